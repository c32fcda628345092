#!/usr/bin/env bash
# The test command (README, and what CI runs): install what the tests need, start a throwaway
# PostgreSQL cluster on 127.0.0.1, run pytest (arguments are passed on), stop the cluster.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

# PostgreSQL's server programs, from Debian's packages, when they are not here yet.
if ! command -v pg_ctl >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "== installing PostgreSQL (Debian package postgresql)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

python3 -m pip install --quiet -e ".[test]"

eval "$(python3 -m tests.support.pgcluster start)"
trap 'python3 -m tests.support.pgcluster stop "$NOTICEWATCH_TEST_POSTGRES_DIR"' EXIT
echo "== PostgreSQL test cluster on ${NOTICEWATCH_TEST_POSTGRES_URL#*@} (data in $NOTICEWATCH_TEST_POSTGRES_DIR)"

python3 -m pytest "$@"
