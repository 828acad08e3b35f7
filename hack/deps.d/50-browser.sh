#!/usr/bin/env bash
# The approval page's browser test: Debian's chromium, driven headless by chromedp.
# Downloading a browser does not work here; Debian's package does.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
