"""The benchmark results as a markdown report (the JSON holds every number)."""
from __future__ import annotations

from typing import Any, Dict, List

from benchmarks.measure import ratio


def _n(value: float) -> str:
    return f"{value:,.0f}"


def pairs(values: Dict[str, Any], unit: str = "") -> str:
    """``{'ingest': 3.3, 'train': 10.2}`` → ``ingest 3.3x, train 10.2x`` (with ``unit="x"``)."""
    return ", ".join(f"{k.replace('_', ' ')} {v:g}{unit}" if isinstance(v, (int, float)) else f"{k} {v}"
                     for k, v in values.items())


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + \
           ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def to_markdown(res: Dict[str, Any]) -> str:
    m = res["machine"]
    out = [f"# sparkdl benchmarks ({res['mode']}, {res['time']})", "",
           f"{m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, torch {m['torch']}, Horovod "
           f"{m['horovod']}, Spark {m['pyspark']}, pyarrow {m['pyarrow']}, numpy {m['numpy']}; "
           f"Spark {res.get('master', '?')}", "",
           "Ratios are sparkdl / baseline from the same run: above 1 is faster for rates; "
           "for times (TorchDistributor), below 1 is faster.", ""]
    rows: List[List[Any]] = []
    notes: List[str] = []
    for d in (res.get("data_path") or {}).get("sizes", []):
        size = f"{d['settings']['rows']:,} rows in {d['settings']['files']} files"
        rows.append([f"1. data path, shuffled batches (rows/s, rank 0 of 2), {size}",
                     _n(d["sparkdl_shuffled"]["rows_per_sec"]), f"{_n(d['bare_pyarrow']['rows_per_sec'])} bare pyarrow",
                     d["ratio_shuffled"]])
        if "sparkdl_shuffled_same_thread" in d:
            rows.append([f"1. data path, shuffled, no prefetch thread (as the bare loop reads), {size}",
                         _n(d["sparkdl_shuffled_same_thread"]["rows_per_sec"]),
                         f"{_n(d['bare_pyarrow']['rows_per_sec'])} bare pyarrow", d["ratio_shuffled_same_thread"]])
        rows.append([f"1. data path, unshuffled, {size}", _n(d["sparkdl_unshuffled"]["rows_per_sec"]),
                     f"{_n(d['bare_pyarrow']['rows_per_sec'])} bare pyarrow", d["ratio_unshuffled"]])
        rows.append([f"1. data path, rows trained per epoch / rows, {size}", d["coverage"],
                     f"{d['coverage_whole_row_groups']} dealing whole row groups",
                     ratio(d["coverage"], d["coverage_whole_row_groups"])])
        if "petastorm_reader_unshuffled" in d:
            loader = d["petastorm_reader_unshuffled"]
            rows.append(["1. data path, Petastorm 0.13.1 `make_batch_reader` (its own env, pyarrow 14), in order",
                         _n(loader["rows_per_sec"]), f"{_n(d['bare_pyarrow']['rows_per_sec'])} bare pyarrow",
                         d["ratio_petastorm_reader"]])
            got, want = loader.get("rows_per_run", [loader["rows"]]), d["settings"].get("petastorm_shard_rows")
            if want and any(n != want for n in got):
                notes.append(f"Petastorm's make_batch_reader delivered {', '.join(f'{n:,}' for n in got)} of its "
                             f"shard's {want:,} rows in its {len(got)} runs (its default thread pool drops row "
                             "groups; sparkdl reads every one). Its rate is its best run's.")
    many = (res.get("data_path") or {}).get("many_files")
    if many:
        m, f = many["many"], many["few"]
        rows.append([f"1. data path, rank start to first batch, {many['rows']:,} rows in {m['files']:,} files (s)",
                     m["first_batch_s"], f"{f['first_batch_s']} in {f['files']} files of the same rows",
                     ratio(m["first_batch_s"], f["first_batch_s"])])
        notes.append(f"Data path (1): with the dataset's index, rank 0 of 2 opened {m['files_opened_by_rank0']:,} of "
                     f"{m['files']:,} files to its first batch, only files it was dealt "
                     f"({m['opened_only_dealt_files']}); reading every footer, as every rank did before the index, "
                     f"took {m['every_footer_s']} s.")
    e = res.get("end_to_end")
    if e:
        for t in e["training"]:
            rows.append([f"2. training, {t['ranks']} ranks x batch {t['batch_per_rank']} (samples/s)",
                         _n(t["sparkdl_samples_per_sec"]),
                         f"{_n(t['plain_torch_samples_per_sec'])} plain torch, {t['plain_torch_threads']} threads, "
                         f"batch {t['global_batch']}", t["ratio"]])
            tl = t.get("horovod_timeline") or {}
            if tl:
                notes.append(f"Training at batch {t['batch_per_rank']}/rank: a step takes {t['step_ms']} ms; after "
                             f"the backward it waits {tl['exposed_ms']} ms for the gradients (negotiation "
                             f"{tl['negotiate_ms']} ms, Gloo allreduce {tl['allreduce_ms']} ms; Horovod timeline "
                             f"of rank 0, {tl['steps']} steps).")
    td = res.get("distributor")
    for run in (td or {}).get("runs", []):
        st, r = run["settings"], run["ratios"]
        what = f"{st['workload']}, batch {st['batch_per_rank']}"
        o = run["torch_distributor"]
        for backend in ("torch", "horovod"):
            s_ = run[f"sparkdl_{backend}"]
            rows.append([f"4. sparkdl-{backend} vs TorchDistributor ({what}): samples/s", _n(s_["samples_per_sec"]),
                         _n(o["samples_per_sec"]), r[f"{backend}_samples_per_sec_vs_td"]])
        rows.append([f"4. sparkdl-torch vs TorchDistributor ({what}): total wall (s)",
                     run["sparkdl_torch"]["wall_seconds"], o["wall_seconds"], r["torch_wall_vs_td"]])
    if td:
        notes.append("TorchDistributor: " + td["runs"][0]["note"] + ".")
    for run in (res.get("etl") or {}).get("runs", []):
        rows.append([f"9. prepare {run['rows']:,} synthetic CSV rows (rows/s)", _n(run["sparkdl_rows_per_sec"]),
                     f"{_n(run['plain_rows_per_sec'])} plain Spark ML job", run["ratio"]])
    if e:
        sc = e["scoring"]
        rows.append([f"5. scoring {sc['sparkdl_score']['rows']:,} Adult rows (rows/s)",
                     _n(sc["sparkdl_score"]["rows_per_sec"]),
                     f"{_n(sc['in_memory_one_process']['rows_per_sec'])} in memory", sc["ratio"]])
    for run in (res.get("scale") or {}).get("runs", []):
        if "scoring" in run:
            sc = run["scoring"]
            rows.append([f"5. scoring {run['rows']:,} synthetic rows (rows/s)", _n(sc["sparkdl_score"]["rows_per_sec"]),
                         f"{_n(sc['in_memory_one_process']['rows_per_sec'])} in memory", sc["ratio"]])
    ts = res.get("scoring")
    if ts:
        rows.append([f"10. scoring {ts['rows']:,} Parquet rows with load_run(...).transform vs the same "
                     "PipelineModel + predict_batch_udf (rows/s)", _n(ts["sparkdl_transformer"]["rows_per_sec"]),
                     f"{_n(ts['predict_batch_udf']['rows_per_sec'])} predict_batch_udf", ts["ratio"]])
        notes.append(f"Scoring (10): the two agree on {ts['same_prediction_fraction']:.4%} of predictions; "
                     f"{ts['note']}.")
    im = res.get("images")
    if im:
        st = im["settings"]
        what = f"{st['images']:,} PNGs of {'x'.join(map(str, st['shape']))}"
        rows.append([f"7. images: decode + materialize with Spark ({what}; images/s)",
                     _n(im["prepare_spark"]["rows_per_sec"]),
                     f"{_n(im['decode_one_process']['rows_per_sec'])} Pillow, one process", im["ratio_prepare"]])
        rows.append(["7. images: uint8 pixels into the loop, shuffled (images/s, rank 0 of 2)",
                     _n(im["sparkdl_reader"]["rows_per_sec"]), f"{_n(im['bare_pyarrow']['rows_per_sec'])} bare pyarrow",
                     im["ratio_reader"]])
        mem = im.get("memory_224")
        if mem:
            notes.append(f"Images (7): one epoch on {mem['images']:,} generated {'x'.join(map(str, mem['shape']))} "
                         f"images with the default loader settings peaked at "
                         f"{' / '.join(f'{v:,} MiB' for v in mem['peak_rss_mib_per_rank'])} resident per rank.")
    if rows:
        out += _table(["what", "sparkdl", "baseline", "ratio"], rows) + [n + "\n" for n in notes]
    x = res.get("exchange")
    if x:
        lat = ", ".join(f"{int(n):,} floats {ms} ms" for n, ms in x["gloo_allreduce_ms"].items())
        out += ["## Gradient exchange, outside Spark (2 processes, in-memory tensors, batch "
                f"{x['settings']['batch_per_rank']} per rank)", ""]
        out += _table(["step", "ms per step", "samples/s per rank", "ratio"], [
            ["independent (no exchange)", x["independent"]["ms_per_step"],
             _n(x["independent"]["samples_per_sec_per_rank"]), 1.0],
            ["Horovod DistributedOptimizer, Gloo", x["horovod"]["ms_per_step"],
             _n(x["horovod"]["samples_per_sec_per_rank"]), x["ratio_horovod"]],
            ["torch DistributedDataParallel, Gloo", x["ddp"]["ms_per_step"],
             _n(x["ddp"]["samples_per_sec_per_rank"]), x["ratio_ddp"]],
            ["torch.distributed Gloo, one flat allreduce", x["gloo_flat"]["ms_per_step"],
             _n(x["gloo_flat"]["samples_per_sec_per_rank"]), x["ratio_gloo_flat"]]])
        out += [f"Gloo allreduce alone: {lat} (the model has {x['independent']['gradient_floats']:,} "
                "gradient floats).", ""]
    if e:
        out += [f"## 3. End to end on Adult: {e['wall_seconds']} s, then scoring", ""]
        out += _table(list(e["stages"]), [[f"{v:.1f}" for v in e["stages"].values()]])
        out += [f"Time to first step (cold Python workers): {e['time_to_first_step_s']} s. "
                f"Scoring stages (s): {pairs(e['scoring']['stages'])}.", ""]
        bl = (e.get("baseline") or {}).get("logistic_regression", {})
        out += [f"Test accuracy {e['test']['accuracy']:.4f} (AUC {e['test'].get('auc', float('nan')):.3f}); "
                f"logistic regression {bl.get('accuracy', float('nan')):.4f}.", ""]
    if td:
        out += _backends_section(td["runs"])
    for key, title in (("scale", "6. Scale: the synthetic job"),
                       ("clicklog", "8. Click-log: 26 embedded categorical columns up to 1 M values")):
        if res.get(key):
            out += _scale_section(res[key], title)
    if res.get("hosts"):
        out += _hosts_section(res["hosts"])
    if res.get("communication"):
        out += _communication_section(res["communication"])
    if res.get("parallelism"):
        out += _parallelism_section(res["parallelism"])
    eg = res.get("embedding_grads")
    if eg:
        st = eg["settings"]
        out += [f"## Embedding gradients, outside Spark (2 Horovod ranks, {st['lookups_per_row']} lookups per row "
                f"into one table x {st['dim']}, batch {st['batch_per_rank']} per rank)", ""]
        out += _table(["table", "ms per step, Horovod", "ms per step, no exchange", "exchange ratio"], [
            [f"{mode}, {_n(eg[mode]['horovod']['table_rows'])} rows", eg[mode]["horovod"]["ms_per_step"],
             eg[mode]["independent"]["ms_per_step"], eg[mode]["ratio_exchange"]]
            for mode in ("dense", "sparse", "hashed")])
        out += [f"Sparse against dense at {_n(st['rows'])} rows: x{eg['ratio_sparse_vs_dense']}; sparse at "
                f"{_n(st['rows'])} rows against dense hashed to {_n(st['hashed_rows'])}: "
                f"x{eg['ratio_sparse_vs_hashed']}.", ""]
    return "\n".join(out)


def _scale_section(sc: Dict[str, Any], title: str) -> List[str]:
    runs = sc["runs"]
    stages = list(runs[-1]["stages"])
    roles = sorted({r for run in runs for r in run["peak_memory_mib"]})
    out = [f"## {title} (seconds per stage, peak MiB per role)", ""]
    out += _table(["rows", "wall"] + stages + ["samples/s", "val AUC"] + [f"peak {r}" for r in roles],
                  [[f"{run['rows']:,}", run["wall_seconds"]] + [run["stages"].get(k, "") for k in stages]
                   + [_n(run["train_samples_per_sec"]), run.get("validation_auc", "")]
                   + [_n(run["peak_memory_mib"].get(r, 0)) for r in roles] for run in runs])
    out += [f"Rows grew x{sc['rows_growth']:g}; stage time grew {pairs(sc['stage_time_growth'], 'x')}; "
            f"peak memory grew {pairs(sc['peak_memory_growth'], 'x')}.", ""]
    scored = [run for run in runs if "scoring" in run]
    if scored:
        out += ["Scoring stages (s): " + "; ".join(
            f"{run['rows']:,} rows: {pairs(run['scoring']['stages'])}" for run in scored), ""]
    return out


def _backends_section(runs: List[Dict[str, Any]]) -> List[str]:
    """Every workload and batch: samples/s of each system, time to first step and wall."""
    out = ["## 4. Training backends: sparkdl (Horovod, torch.distributed) vs TorchDistributor vs plain torch", ""]
    out += _table(["workload", "params", "batch/rank", "samples/s: sparkdl-horovod", "sparkdl-torch",
                   "TorchDistributor", "plain torch", "torch / TD", "horovod / TD", "torch / plain",
                   "first step (s): horovod / torch / TD", "wall (s): horovod / torch / TD"],
                  [[run["settings"]["workload"], _n(run["settings"]["parameters"]), run["settings"]["batch_per_rank"],
                    _n(run["sparkdl_horovod"]["samples_per_sec"]), _n(run["sparkdl_torch"]["samples_per_sec"]),
                    _n(run["torch_distributor"]["samples_per_sec"]), _n(run["plain_torch_samples_per_sec"]),
                    run["ratios"]["torch_samples_per_sec_vs_td"], run["ratios"]["horovod_samples_per_sec_vs_td"],
                    run["ratios"]["torch_vs_plain_torch"],
                    " / ".join(str(run[k]["time_to_first_step_s"])
                               for k in ("sparkdl_horovod", "sparkdl_torch", "torch_distributor")),
                    " / ".join(str(run[k]["wall_seconds"])
                               for k in ("sparkdl_horovod", "sparkdl_torch", "torch_distributor"))]
                   for run in runs])
    steps = "; ".join(f"{run['settings']['workload']} at {run['settings']['batch_per_rank']}: horovod "
                      f"{pairs(run['sparkdl_horovod']['step_ms'])}, torch {pairs(run['sparkdl_torch']['step_ms'])}"
                      for run in runs)
    out += [f"sparkdl's step, ms (the loop's timers: whole step, waiting for data, forward and backward, "
            f"optimizer step): {steps}.", ""]
    launched = [run for run in runs if run.get("launchers")]
    if launched:
        names = list(launched[0]["launchers"])
        out += ["sparkdl's torch backend by launcher (samples/s; time to first step, s; wall, s):", ""]
        out += _table(["workload", "batch/rank"] + names,
                      [[run["settings"]["workload"], run["settings"]["batch_per_rank"]]
                       + [f"{_n(run['launchers'][k]['samples_per_sec'])}; {run['launchers'][k]['time_to_first_step_s']}"
                          f"; {run['launchers'][k]['wall_seconds']}" for k in names] for run in launched])
    return out


def _hosts_section(h: Dict[str, Any]) -> List[str]:
    out = [f"## Bandwidth: two worker hosts, links shaped (batch {h['batch_per_rank']} per rank)", ""]
    out += _table(["workload (parameters)", "backend", "link", "samples/s", "ms/step: data, compute, step",
                   "MB sent per rank per step", "ring allreduce MB", "sent / ring"], [
        [f"{r['workload']} ({r['parameters'] / 1e6:.2f} M)", r["backend"], r["link"], _n(r["samples_per_sec"]),
         f"{r['ms_per_step']['data']}, {r['ms_per_step']['compute']}, {r['ms_per_step']['step']}",
         f"{r['bytes_per_step'] / 1e6:.3f}", f"{r['ring_bytes_per_step'] / 1e6:.3f}", r["bytes_vs_ring"]]
        for r in h["runs"]])
    return out + [h["note"], ""]


def _acc(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _parallelism_section(p: Dict[str, Any]) -> List[str]:
    def cells(r: Dict[str, Any]) -> List[Any]:
        if "error" in r:
            return [r["strategy"], r["ranks"], "failed", "", "", "", "", "", r["error"][:160]]
        return [r["strategy"], r["ranks"], _n(r["samples_per_sec"]), r.get("samples_per_sec_vs_ddp", ""),
                " / ".join(f"{x:g}" for x in r["state_mib_per_rank"]), r.get("state_vs_ddp", ""),
                " / ".join(str(x) for x in r["peak_rss_mib_per_rank"]),
                " / ".join(f"{x:.2f}" for x in r["outside_layers_share_per_rank"]), r.get("bubble", "")]

    head = ["strategy", "ranks", "samples/s", "vs DDP", "state MiB per rank", "state vs DDP", "peak RSS MiB per rank",
            "share of step outside layers", "schedule's bubble"]
    out = [f"## Models split across ranks (MLP {p['fits_hidden']}, batch {p['batch_per_rank']} per replica)", ""]
    out += _table(head, [cells(r) for r in p["rows"]])
    if p.get("hosts"):
        out += ["On two worker hosts (one rank a host at 2 ranks, two at 4); bytes each host sent per step:", ""]
        out += _table(["strategy", "ranks", "link", "samples/s", "vs DDP", "MB per step", "bytes vs DDP",
                       "test accuracy"],
                      [[r["strategy"], r["ranks"], r["link"], _n(r["samples_per_sec"]), r["samples_per_sec_vs_ddp"],
                        f"{r['host_bytes_per_step'] / 1e6:.3f}", r["bytes_vs_ddp"], _acc(r["held_out_accuracy"])]
                       for r in p["hosts"]])
    lim = p["limit"]
    out += [f"An MLP of {len(lim['hidden'])} layers of {lim['hidden'][0]}, without a limit (peak virtual MiB per "
            "rank: " + "; ".join(f"{r['strategy']} {r.get('peak_virtual_mib_per_rank')}" for r in lim["unlimited"])
            + "):", ""]
    out += _table(head, [cells(r) for r in lim["unlimited"]])
    if lim["pyspark_memory_mib"]:
        out += [f"The same under spark.executor.pyspark.memory = {lim['pyspark_memory_mib']} MiB:", ""]
        out += _table(head, [cells(r) for r in lim["rows"]])
    return out


def _communication_section(c: Dict[str, Any]) -> List[str]:
    out = [f"## Less communication per step (torch backend, batch {c['batch_per_rank']} per rank)", "",
           "One host (loopback), against one plain-torch process on as many threads:", ""]
    out += _table(["workload", "method", "samples/s", "vs plain torch", "test accuracy", "points vs none"],
                  [[r["workload"], r["method"], _n(r["samples_per_sec"]), r["vs_plain_torch"],
                    _acc(r["held_out_accuracy"]), r["accuracy_points_vs_none"]] for r in c["loopback"]])
    out += ["Two worker hosts, links shaped; bytes each rank's host sent per step against the method's arithmetic:",
            ""]
    out += _table(["workload", "link", "method", "samples/s", "vs none", "MB per step", "arithmetic MB",
                   "sent / arithmetic", "test accuracy", "points vs none"],
                  [[r["workload"], r["link"], r["method"], _n(r["samples_per_sec"]), r["samples_per_sec_vs_none"],
                    f"{r['bytes_per_step'] / 1e6:.3f}", f"{r['arithmetic_bytes_per_step'] / 1e6:.3f}",
                    r["bytes_vs_arithmetic"], _acc(r["held_out_accuracy"]), r["accuracy_points_vs_none"]]
                   for r in c["hosts"]])
    out += ["Parameter server against ring allreduce (4 MB of gradient per worker and step):", ""]
    out += _table(["workers", "exchange", "link", "step s", "server MB/step", "worker MB/step",
                   "arithmetic s/step"],
                  [[r["workers"], r["exchange"], r["link"], r["step_s"], r["server_mb_per_step"],
                    r["worker_mb_per_step"], r["arithmetic_s"]] for r in c["parameter_server"]])
    return out
