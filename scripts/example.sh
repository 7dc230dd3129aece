#!/usr/bin/env bash
# The main job on the bundled example: lint examples/, then render every target into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/smtpconf lint examples/
# The example's relays read their passwords from the environment and files at render time
# (sasl_passwd); these stand-ins let the example render anywhere.
export GMAIL_APP_PASSWORD="${GMAIL_APP_PASSWORD:-example-app-password}"
.venv/bin/smtpconf render examples/smtpconf.yaml -o out/
