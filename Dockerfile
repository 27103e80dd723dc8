# The gateway-xds image: `xdsctl` (serve, bootstrap, translate, echo, ...) on Python 3.11.
# docker-compose.yaml runs the control plane and the demo's echo backends from it:
#   docker build -t gateway-xds:dev .
#   docker run --rm -v "$PWD/examples:/config:ro" -p 127.0.0.1:18000:18000 gateway-xds:dev \
#     serve --config-dir /config --xds-address 0.0.0.0:18000 --admin-address 0.0.0.0:19000
# Runtime dependencies only, at the versions pinned in requirements.lock (which also pins the
# dev tools; those are not installed). tests/test_compose.py checks this file.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/gateway-xds
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when the lock or pyproject.toml change.
# pyproject.toml names the runtime dependencies; the lock pins them and everything they pull in.
COPY requirements.lock pyproject.toml README.md ./
RUN deps="$(python -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')" \
 && /opt/gateway-xds/bin/pip install --only-binary=:all: --constraint requirements.lock \
      "$(grep '^setuptools==' requirements.lock)" $deps
COPY watcher ./watcher
COPY translator ./translator
COPY xds_server ./xds_server
# Then the project itself; a smoke run of the entry point; and no build tools left behind.
RUN /opt/gateway-xds/bin/pip install --no-deps --no-build-isolation . \
 && /opt/gateway-xds/bin/pip check \
 && /opt/gateway-xds/bin/xdsctl bootstrap --gateway default/demo > /dev/null \
 && /opt/gateway-xds/bin/python -m pip uninstall --yes setuptools pip

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 gateway-xds \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway-xds
COPY --from=build /opt/gateway-xds /opt/gateway-xds
ENV PATH=/opt/gateway-xds/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# A numeric user, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# xDS (ADS gRPC) and the admin API (/healthz, /readyz, /metrics, /api/...).
EXPOSE 18000 19000
# Python turns SIGINT into a clean stop even as PID 1, where an unhandled SIGTERM is ignored
# (`xdsctl echo` handles only SIGINT; `xdsctl serve` handles both).
STOPSIGNAL SIGINT
ENTRYPOINT ["xdsctl"]
CMD ["--help"]
