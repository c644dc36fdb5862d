"""A reduced copy of a class-per-folder data set that travels to a lent GPU machine (its working tree is
limited to 64 MiB): every image resized to ``--size`` px and re-encoded as JPEG, optionally a class subset.

    python bench/gpu_data.py --src ../shared/data/AID_150px --out gpu_data/aid96 --size 96 --quality 90 \
        --tar gpu_pack/aid96.tar

AID at 96 px, quality 90: 9,999 images, 42 MiB of JPEG (66 MiB on disk in 4 KiB blocks, hence one tar of
49 MiB to carry). The copy is what ``bench/gpu_check.py --data`` reads, on the CPU (reference runs) and on
the GPU alike (unpacked there with ``tar xf gpu_pack/aid96.tar -C /tmp``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def reduce_folder(src: Path, out: Path, size: int, quality: int, classes: int | None = None) -> tuple[int, int]:
    """Writes ``out/<class>/<stem>.jpg`` for every image of ``src``; returns (images, bytes)."""
    from PIL import Image

    from compress.data.folder import list_class_folders

    folders = list_class_folders(src)
    if classes is not None:
        folders = folders[:classes]
    n = total = 0
    for name, files in folders:
        (out / name).mkdir(parents=True, exist_ok=True)
        for f in files:
            target = out / name / f"{f.stem}.jpg"
            with Image.open(f) as img:
                img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0).save(
                    target, quality=quality)
            n += 1
            total += target.stat().st_size
    return n, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--classes", type=int, default=None, help="keep the first N classes only")
    ap.add_argument("--tar", type=Path, default=None, help="also pack the copy into this one file")
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out} is not empty; remove it or pick another --out", file=sys.stderr)
        return 1
    n, total = reduce_folder(args.src, args.out, args.size, args.quality, args.classes)
    print(f"{n} images, {total / 2**20:.1f} MiB in {args.out}")
    if args.tar is not None:
        import tarfile

        args.tar.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(args.tar, "w") as tar:
            tar.add(args.out, arcname=args.out.name)
        print(f"packed into {args.tar} ({args.tar.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
