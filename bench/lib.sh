# Shared by the bench scripts (sourced, not run): a throwaway nginx upstream answering `200 ok`, and stopping
# by PID everything a script started, when it exits.
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start_upstream DIR ADDR [PREFIX...]: nginx answering `200 ok` on ADDR, its files in DIR, started through
# PREFIX (e.g. `taskset -c 0`) when given.
start_upstream() {
  local dir=$1 addr=$2
  shift 2
  cat > "$dir/up.conf" <<CONF
worker_processes 1;
pid $dir/up.pid;
error_log $dir/up.err;
daemon off;
events { worker_connections 1024; }
http { access_log off; server { listen $addr; location / { return 200 "ok"; } } }
CONF
  "$@" nginx -c "$dir/up.conf" &
  PIDS+=($!)
}
