# lmforge serve in a container: docker build -t lmforge:0.2.0 . && docker run -p 8000:8000 -v $PWD/runs:/runs lmforge:0.2.0 serve /runs/NAME --host 0.0.0.0
# The CPU build of torch is installed first: left to pip, `torch` can pull a multi-GB CUDA build.
FROM python:3.11-slim AS build
ARG TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
RUN python -m venv /opt/lmforge && /opt/lmforge/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/lmforge/bin/pip install --no-cache-dir $TORCH
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN /opt/lmforge/bin/pip install --no-cache-dir "/src[serve]"

FROM python:3.11-slim
COPY --from=build /opt/lmforge /opt/lmforge
RUN useradd --uid 10001 --create-home lmforge
USER 10001
ENV PATH=/opt/lmforge/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false LMFORGE_HOME=/tmp/lmforge PYTHONUNBUFFERED=1
EXPOSE 8000 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
ENTRYPOINT ["lmforge"]
CMD ["serve", "/config/serve.yaml", "--host", "0.0.0.0"]
