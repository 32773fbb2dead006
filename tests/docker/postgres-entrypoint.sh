#!/bin/sh
# The entrypoint of directus-ops-test/postgres:15 (tests/docker_images.py): the official postgres image's
# environment on Debian's PostgreSQL 15. On the first start (an empty $PGDATA) it makes the cluster with
# POSTGRES_USER (default postgres) as its superuser, POSTGRES_PASSWORD as that user's password when given, and
# the database POSTGRES_DB (default: POSTGRES_USER). Then postgres runs in the foreground on 127.0.0.1:$PGPORT
# (default 5433) and on the socket in /var/run/postgresql. Authentication: trust on the socket and on
# 127.0.0.1 (POSTGRES_HOST_AUTH_METHOD for 127.0.0.1, e.g. scram-sha-256).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}" "${PGPORT:=5433}" "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}" "${POSTGRES_PASSWORD:=}" "${POSTGRES_HOST_AUTH_METHOD:=trust}"
export PGDATA PGPORT

if [ "${1:-postgres}" != postgres ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres-entrypoint: initializing $PGDATA (superuser $POSTGRES_USER, database $POSTGRES_DB)"
  pwfile=
  if [ -n "$POSTGRES_PASSWORD" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  fi
  initdb --username="$POSTGRES_USER" ${pwfile:+--pwfile="$pwfile"} --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" >/dev/null
  [ -z "$pwfile" ] || rm -f "$pwfile"
  # Only 127.0.0.1 (and the socket): no other address is ever listened on or accepted.
  cat >"$PGDATA/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 $POSTGRES_HOST_AUTH_METHOD
HBA
  if [ "$POSTGRES_DB" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p $PGPORT" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 -q --username="$POSTGRES_USER" --dbname=postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "postgres-entrypoint: initialized"
fi

exec postgres -D "$PGDATA" -p "$PGPORT" -c listen_addresses=127.0.0.1
