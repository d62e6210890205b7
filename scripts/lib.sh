# Shell helpers shared by scripts/test and scripts/demo (sourced, not run).

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Real Prometheus, promtool and Alertmanager from Debian's packages, when any is missing.
ensure_prometheus_tools() {
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
    || ! command -v prometheus-alertmanager >/dev/null; then
    echo "==> installing prometheus, promtool and alertmanager"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      prometheus prometheus-alertmanager
  fi
}

# A real browser for the web UI's tests (tests/ui_browser.rs): Debian's Chromium and its
# WebDriver, when either is missing.
ensure_browser() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "==> installing chromium and chromium-driver"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      chromium chromium-driver
  fi
}
