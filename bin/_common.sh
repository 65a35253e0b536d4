# Shared by bin/eyrie-demo and bin/eyrie-test: find or install Odoo 18.0,
# make sure PostgreSQL answers, and write an Odoo configuration for Eyrie.
# shellcheck shell=bash

EYRIE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EYRIE_STATE="$EYRIE_ROOT/.eyrie"
PYTHON=${PYTHON:-python3}
export PGHOST=${PGHOST:-127.0.0.1}
export PGPORT=${PGPORT:-5432}
export PGUSER=${PGUSER:-$(id -un)}

die() {
    echo "eyrie: ERROR: $*" >&2
    exit 1
}

say() {
    echo "eyrie: $*" >&2
}

# The Python that runs Odoo: python3 when it already imports Odoo 18.0 (CI's
# case), else the repository's own virtualenv, .venv, created on first use.
EYRIE_VENV="$EYRIE_ROOT/.venv"
QUEUE_JOB_REQUIREMENT='odoo-addon-queue_job==18.0.*'

odoo_version() {
    "$PYTHON" -c 'import odoo.release as r; print(r.serie)' 2>/dev/null
}

# Installs Odoo 18.0 from its official source into .venv when python3 cannot
# import it. Set EYRIE_NO_ODOO_INSTALL=1 to fail instead (CI does).
ensure_odoo() {
    local version
    version=$(odoo_version || true)
    if [ "$version" = "18.0" ]; then
        repair_editable_odoo
        return 0
    fi
    if [ -x "$EYRIE_VENV/bin/python" ]; then
        PYTHON="$EYRIE_VENV/bin/python"
        version=$(odoo_version || true)
        if [ "$version" = "18.0" ]; then
            repair_editable_odoo
            return 0
        fi
    fi
    [ -z "$version" ] || die "$PYTHON imports Odoo $version; Eyrie needs Odoo 18.0."
    [ "${EYRIE_NO_ODOO_INSTALL:-0}" = "1" ] && die "Odoo 18.0 is not importable by $PYTHON. Install it first (see docs/installing.rst)."
    local src=${EYRIE_ODOO_SRC:-$HOME/.local/share/eyrie/odoo-18.0}
    say "Odoo 18.0 is not importable: installing it from $src into $EYRIE_VENV"
    if [ ! -f "$src/odoo/release.py" ]; then
        git clone --depth 1 --branch 18.0 https://github.com/odoo/odoo.git "$src" \
            || die "could not clone Odoo 18.0 into $src"
    fi
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        apt-get update -qq && apt-get install -y -qq libldap2-dev libsasl2-dev libpq-dev >/dev/null \
            || die "could not install the build dependencies of Odoo (libldap2-dev libsasl2-dev libpq-dev)"
    fi
    if [ ! -x "$EYRIE_VENV/bin/python" ]; then
        python3 -m venv "$EYRIE_VENV" || die "could not create the virtualenv $EYRIE_VENV"
    fi
    PYTHON="$EYRIE_VENV/bin/python"
    local constraints
    constraints=$(mktemp)
    # cbor2 5.4.2 (pinned by Odoo for Python 3.11) still builds with pkg_resources.
    echo 'setuptools<72' >"$constraints"
    PIP_CONSTRAINT=$constraints "$PYTHON" -m pip install -q -r "$src/requirements.txt" \
        || die "could not install Odoo's Python requirements"
    # A path entry (compat mode), not an import finder: queue_job's wheel
    # adds an odoo/addons folder that would otherwise shadow the source.
    "$PYTHON" -m pip install -q --no-deps -e "$src" --config-settings editable_mode=compat \
        || die "could not install Odoo from $src"
    rm -f "$constraints"
    [ "$(odoo_version)" = "18.0" ] || die "Odoo 18.0 is still not importable after installing it"
}

# An Odoo installed by 'pip install -e' in setuptools' default mode (an
# import finder) breaks once queue_job's wheel is in site-packages: 'odoo'
# becomes a namespace package without __file__. Reinstall it in compat mode.
repair_editable_odoo() {
    "$PYTHON" -c 'import odoo, sys; sys.exit(0 if getattr(odoo, "__file__", None) else 1)' 2>/dev/null && return 0
    local location
    location=$("$PYTHON" -m pip show odoo 2>/dev/null | sed -n 's/^Editable project location: //p')
    [ -n "$location" ] || die "$PYTHON imports a broken Odoo (no odoo/__init__.py found) and it is not an editable install that could be repaired"
    say "reinstalling the editable Odoo of $location in compat mode (queue_job's wheel shadows it otherwise)"
    "$PYTHON" -m pip install -q --no-deps -e "$location" --config-settings editable_mode=compat \
        || die "could not reinstall Odoo from $location"
}

# The browser tests (Odoo tours) need Chrome or Chromium, found on PATH under
# the names Odoo looks for. Installs Debian's chromium when root with apt-get;
# fails otherwise: Odoo would silently skip those tests.
chromium_found() {
    local bin
    for bin in google-chrome chromium chromium-browser google-chrome-stable; do
        command -v "$bin" >/dev/null 2>&1 && return 0
    done
    return 1
}

ensure_chromium() {
    chromium_found && return 0
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        say "no Chrome or Chromium for the browser tests: installing Debian's chromium"
        apt-get update -qq && apt-get install -y -qq chromium >/dev/null \
            || die "could not install chromium (apt-get install chromium)"
        chromium_found && return 0
    fi
    die "no Chrome or Chromium on PATH: the browser tests (tours) need one. Install it, e.g. 'apt-get install chromium' on Debian, as root."
}

ensure_python_deps() {
    if ! "$PYTHON" -c 'import jinja2, yaml, kubernetes, boto3, kmock, kubernetes_validate, pytest_asyncio, pytest_odoo, freezegun' 2>/dev/null; then
        say "installing Eyrie's Python requirements"
        "$PYTHON" -m pip install -q -r "$EYRIE_ROOT/requirements.txt" \
            || die "could not install requirements.txt"
    fi
    ensure_queue_job
}

# OCA queue_job 18.0, without its dependencies: they would pull 'odoo' from
# PyPI and psycopg2 as a source build, beside the Odoo already here.
ensure_queue_job() {
    if ! queue_job_found; then
        say "installing OCA queue_job ($QUEUE_JOB_REQUIREMENT)"
        "$PYTHON" -m pip install -q --no-deps "$QUEUE_JOB_REQUIREMENT" \
            || die "could not install $QUEUE_JOB_REQUIREMENT"
        repair_editable_odoo
    fi
    queue_job_found && "$PYTHON" -c 'import odoo.release' 2>/dev/null \
        || die "queue_job is installed but Odoo does not find it (odoo.addons.queue_job)"
}

# The tests' S3 peer: moto's S3 server and the AWS CLI, which the books'
# filestore archive Jobs run, in a virtualenv of their own (moto needs a newer
# cryptography than Odoo 18.0 pins). The tests fail, never skip, without it.
S3_PEER_REQUIREMENTS=("moto[server]==5.2.5" "awscli==1.46.3")
ensure_s3_peer() {
    export EYRIE_S3_PEER=${EYRIE_S3_PEER:-$HOME/.local/share/eyrie/s3-peer}
    if [ -x "$EYRIE_S3_PEER/bin/moto_server" ] && [ -x "$EYRIE_S3_PEER/bin/aws" ]; then
        return 0
    fi
    say "installing the tests' S3 peer (${S3_PEER_REQUIREMENTS[*]}) into $EYRIE_S3_PEER"
    python3 -m venv "$EYRIE_S3_PEER" \
        && "$EYRIE_S3_PEER/bin/python" -m pip install -q "${S3_PEER_REQUIREMENTS[@]}" \
        || die "could not install the S3 peer (${S3_PEER_REQUIREMENTS[*]}) into $EYRIE_S3_PEER"
}

# The tests' pgBackRest peer: Debian's pgbackrest, which backs up and restores
# a private PostgreSQL cluster of the tests with the options Eyrie gives PGO.
# Installed when root with apt-get; the tests fail, never skip, without it.
ensure_pgbackrest() {
    command -v pgbackrest >/dev/null 2>&1 && return 0
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        say "no pgbackrest for the pgBackRest tests: installing Debian's pgbackrest"
        apt-get update -qq && apt-get install -y -qq pgbackrest >/dev/null \
            || die "could not install pgbackrest (apt-get install pgbackrest)"
        command -v pgbackrest >/dev/null 2>&1 && return 0
    fi
    die "no pgbackrest on PATH: the pgBackRest tests need it. Install it, e.g. 'apt-get install pgbackrest' on Debian, as root."
}

# Found, not imported: importing it needs Odoo's addons path (base_sparse_field).
queue_job_found() {
    "$PYTHON" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("odoo.addons.queue_job") else 1)' 2>/dev/null
}

ensure_postgres() {
    if pg_isready -q 2>/dev/null; then
        return 0
    fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        say "PostgreSQL does not answer: starting it"
        local version
        for version in /etc/postgresql/*; do
            pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
        done
        for _ in $(seq 1 30); do
            pg_isready -q 2>/dev/null && return 0
            sleep 1
        done
    fi
    die "PostgreSQL does not answer on $PGHOST:$PGPORT (user $PGUSER). Start it, or set PGHOST/PGPORT/PGUSER."
}

# The addons folder of the installed Odoo that holds 'web' (source checkout:
# beside the odoo package; packaged install: inside it).
odoo_addons_path() {
    "$PYTHON" - <<'PY'
import os
import odoo
package = os.path.dirname(odoo.__file__)
for candidate in (os.path.join(os.path.dirname(package), "addons"), os.path.join(package, "addons")):
    if os.path.isfile(os.path.join(candidate, "web", "__manifest__.py")):
        print(candidate)
        break
else:
    raise SystemExit("the installed Odoo has no 'web' addon")
PY
}

# write_config FILE DB HTTP_PORT [JOB_CAPACITY]: an Odoo configuration for
# Eyrie. queue_job is a server-wide module (its job runner starts with the
# server); JOB_CAPACITY (default 4) is how many queue jobs this server's
# runner dispatches at once, 0 for no runner (the tests run jobs themselves).
write_config() {
    local file=$1 db=$2 port=$3 capacity=${4:-4} addons
    addons=$(odoo_addons_path) || die "cannot find Odoo's addons"
    mkdir -p "$(dirname "$file")"
    cat >"$file" <<CONF
[options]
db_host = $PGHOST
db_port = $PGPORT
db_user = $PGUSER
db_name = $db
dbfilter = ^$db\$
addons_path = $addons,$EYRIE_ROOT,$EYRIE_ROOT/examples
http_port = $port
http_interface = 127.0.0.1
server_wide_modules = base,web,queue_job

[queue_job]
max_capacity = $capacity
CONF
}

# odoo ARGS...: the Odoo command of the chosen Python.
odoo() {
    "$PYTHON" -m odoo "$@"
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
