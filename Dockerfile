# pdiff for self-hosting and Docker Spaces (https://huggingface.co/docs/hub/spaces-sdks-docker).
#   CPU, bundled model:  docker build -t pdiff --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu . \
#                          && docker run -p 7860:7860 pdiff
#   GPU, released 7B:    docker build -t pdiff-7b --build-arg PDIFF_MODEL=dmisrael/planned-diffusion-dream7b-sft-16ep \
#                          --build-arg BAKE_MODEL=1 . && docker run --gpus all -p 7860:7860 pdiff-7b
# torch==2.13.0 from PyPI carries its own CUDA libraries (several GB), so the default build serves
# GPUs too; TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the pinned torch's CPU wheel instead.
# BASE selects another image (a CUDA one with python3.11 and pip) when a host needs it.
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG PDIFF_MODEL=bundled
# 1: download the model into the image at build time (the default downloads nothing).
ARG BAKE_MODEL=0
# An extra package index for torch (empty: PyPI only, the CUDA build).
ARG TORCH_INDEX=

RUN useradd -m -u 1000 user
USER 1000
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    PDIFF_MODEL=${PDIFF_MODEL}
WORKDIR $HOME/app

# Requirements first, so code changes do not invalidate this layer.
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} -r requirements.txt

COPY --chown=user . .
RUN if [ "$BAKE_MODEL" = "1" ] && [ "$PDIFF_MODEL" != "bundled" ]; then \
      python -c "from pdiff.loader import resolve; print(resolve('$PDIFF_MODEL'))"; \
    fi

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]
CMD ["python", "app.py"]
