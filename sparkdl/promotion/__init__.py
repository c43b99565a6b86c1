"""What decides which model serves: drift checks of the input, the promotion gate, the
lake's champions, and the scheduled job that puts them in order."""
