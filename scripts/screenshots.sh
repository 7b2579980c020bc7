#!/usr/bin/env bash
# Refresh the console screenshots in docs/console/ (README, Console) by
# running the browser test with its screenshots pointed there. A plain test
# run writes them under target/tmp/console and leaves the tracked ones alone.
#
#   scripts/screenshots.sh
#
# Needs Debian's chromium and chromium-driver.
set -euo pipefail
cd "$(dirname "$0")/.."
CT_SCREENSHOTS_DIR="$PWD/docs/console" CT_REQUIRE_CHROMIUM=1 \
    cargo nextest run --test console_browser
git status --short docs/console
