#!/bin/bash
# The GPU check of issue 35 (item 6), one short script for a lent device machine:
#
#   bash scripts/gpu_check.sh prepare   # here, where the package registries answer: the wheels
#                                       # the device image lacks into .whl/, Fashion-MNIST into
#                                       # .fmnist/ (both ignored by git; about 31 MB together)
#   bash scripts/gpu_check.sh           # there: the device tool's run, carry [".whl", ".fmnist"],
#                                       # timeout_s 540
#
# There it names the card, runs the CUDA tests (the step replayed as a CUDA graph against eager
# steps, SGD and Adam; stacked jobs on CUDA against the same jobs one by one; the synthetic data
# made on the device), then `bench.py loop` and `bench.py stacked` with --device cuda. The
# device image has PyTorch, TensorBoard, numpy, Pillow, PyYAML, tqdm, matplotlib and pytest
# (/work/.library/device/KINDS.md), not Hydra, OmegaConf or ANTLR's runtime: they travel as
# wheels. DEVICE=cpu runs the same steps on the CPU (a check of the script itself).
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = prepare ]; then
    if ! ls /usr/share/datasets/fashion-mnist/*.gz > /dev/null 2>&1; then
        echo "error: Fashion-MNIST is not installed here; apt-get install -y" \
            "dataset-fashion-mnist, then prepare again" >&2
        exit 2
    fi
    set -e
    rm -rf .whl .fmnist && mkdir -p .whl .fmnist
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp -d .whl hydra-core==1.3.8 omegaconf==2.3.1
    python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # an sdist only
    cp /usr/share/datasets/fashion-mnist/*.gz .fmnist/
    grep -qx "/.fmnist/" .git/info/exclude || echo "/.fmnist/" >> .git/info/exclude
    ls -l .whl .fmnist
    exit 0
fi
device=${DEVICE:-cuda}
if ! ls .whl/*.whl > /dev/null 2>&1 || ! ls .fmnist/*.gz > /dev/null 2>&1; then
    echo "error: no .whl/ or .fmnist/ here; run 'bash scripts/gpu_check.sh prepare' first and" \
        "carry both (device tool: carry [\".whl\", \".fmnist\"])" >&2
    exit 2
fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1
data=/usr/share/datasets/fashion-mnist
[ -e $data/train-images-idx3-ubyte.gz ] || { mkdir -p $data && cp .fmnist/*.gz $data/; }
if [ "$device" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
python3 -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available()
else 'no cuda', torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
python3 -m pytest -q -p no:cacheprovider tests/test_capture.py tests/test_synthetic.py \
    "tests/test_stacked.py::test_stacked_jobs_on_cuda_equal_the_same_jobs_one_by_one"
python3 scripts/bench.py loop stacked --device "$device"
