# Sourced by .ci/run: start the real services the test suite needs, export where they are, stop them on exit.
#
# - PostgreSQL (Debian's package, installed if missing): a throw-away cluster in a temporary directory, run as
#   the `postgres` user, on a free loopback port: ADMM_TUNE_TEST_POSTGRES is its SQLAlchemy URL.
# - Dask: a scheduler and two worker processes started by their own command-line entry points (the way a user
#   scales out), on loopback: ADMM_TUNE_TEST_DASK is the scheduler's address.
#
# tests/test_distributed.py uses both; under CI=true a missing one fails those tests instead of skipping them.

SERVICES_DIR=$(mktemp -d /tmp/admm_tune_services.XXXXXX)
chmod 755 "$SERVICES_DIR"
SERVICE_PIDS=()

stop_services() {
    for pid in "${SERVICE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "${PG_BIN:-}" ] && [ -d "$SERVICES_DIR/pg/db" ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg/db" -m fast stop >/dev/null 2>&1 || true
    fi
    wait 2>/dev/null || true
    rm -rf "$SERVICES_DIR"
}
trap stop_services EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_postgres() {  # from a directory the postgres user may enter
    (cd "$SERVICES_DIR" && if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi)
}

# -- PostgreSQL ----------------------------------------------------------------------------------------------------
if [ -z "$(pg_bin)" ] && [ "$(id -u)" = 0 ]; then
    echo "services: installing PostgreSQL (Debian's package)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN=$(pg_bin)
if [ -n "$PG_BIN" ]; then
    mkdir -p "$SERVICES_DIR/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$SERVICES_DIR/pg"
    PG_PORT=$(free_port)
    as_postgres "$PG_BIN/initdb" -D "$SERVICES_DIR/pg/db" -A trust -U postgres >/dev/null
    as_postgres "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg/db" -w -l "$SERVICES_DIR/pg/log" \
        -o "-p $PG_PORT -k $SERVICES_DIR/pg -c listen_addresses=127.0.0.1" start >/dev/null
    export ADMM_TUNE_TEST_POSTGRES="postgresql+psycopg2://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "services: PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
else
    echo "services: no PostgreSQL here (and not root to install it)"
fi

# -- Dask: a scheduler and two worker processes, from the project's environment ------------------------------------
make install >/dev/null
DASK_PORT=$(free_port)
.venv/bin/dask scheduler --host 127.0.0.1 --port "$DASK_PORT" --no-dashboard >"$SERVICES_DIR/scheduler.log" 2>&1 &
SERVICE_PIDS+=($!)
for i in 1 2; do
    .venv/bin/dask worker "tcp://127.0.0.1:$DASK_PORT" --nthreads 1 --nworkers 1 --no-dashboard \
        --name "ci-worker-$i" >"$SERVICES_DIR/worker-$i.log" 2>&1 &
    SERVICE_PIDS+=($!)
done
if .venv/bin/python -c "
from distributed import Client
with Client('tcp://127.0.0.1:$DASK_PORT', timeout=60) as client:
    client.wait_for_workers(2, timeout=120)
"; then
    export ADMM_TUNE_TEST_DASK="tcp://127.0.0.1:$DASK_PORT"
    echo "services: Dask scheduler on $ADMM_TUNE_TEST_DASK with 2 worker processes"
else
    echo "services: the Dask cluster did not start:"; tail -n 20 "$SERVICES_DIR"/*.log
fi
