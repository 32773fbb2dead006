#!/bin/sh
# The entrypoint of directus-ops-test/mariadb:10.11 (tests/docker_images.py): the official mariadb image's
# environment on Debian's MariaDB 10.11. On the first start (no system tables in /var/lib/mysql) it makes the data
# directory, sets root's password (MARIADB_ROOT_PASSWORD, or none with MARIADB_ALLOW_EMPTY_ROOT_PASSWORD), and
# creates MARIADB_DATABASE and MARIADB_USER with MARIADB_PASSWORD (granted all on that database); the MYSQL_*
# names are read too. Then mariadbd runs in the foreground on 127.0.0.1:$MARIADB_PORT (default 3307) and on the
# socket /run/mysqld/mysqld.sock; the clients inside (mariadb, mariadb-dump) find both from the config written here.
set -eu
: "${MARIADB_PORT:=3307}"
: "${MARIADB_ROOT_PASSWORD:=${MYSQL_ROOT_PASSWORD:-}}"
: "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
: "${MARIADB_DATABASE:=${MYSQL_DATABASE:-}}" "${MARIADB_USER:=${MYSQL_USER:-}}"
: "${MARIADB_PASSWORD:=${MYSQL_PASSWORD:-}}"
datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

if [ "${1:-mariadbd}" != mariadbd ]; then
  exec "$@"
fi

# The server's and the clients' settings, for this start's port (docker exec's clients read them too).
cat >/etc/mysql/mariadb.conf.d/99-directus-ops-test.cnf <<CNF
[client-server]
port = $MARIADB_PORT
socket = $socket

[mariadbd]
bind-address = 127.0.0.1
skip-name-resolve
CNF

mkdir -p "$datadir" /run/mysqld
chown -R mysql:mysql "$datadir" /run/mysqld

if [ ! -d "$datadir/mysql" ]; then
  if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ]; then
    echo "mariadb-entrypoint: set MARIADB_ROOT_PASSWORD or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1" >&2
    exit 1
  fi
  echo "mariadb-entrypoint: initializing $datadir"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db --auth-root-authentication-method=socket \
    --skip-name-resolve >/dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$socket" >/tmp/mariadb-init.log 2>&1 &
  pid=$!
  for _ in $(seq 60); do
    mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1 && break
    sleep 1
  done
  quote() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host NOT IN ('localhost'));"
    echo "DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost');"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$(quote "$MARIADB_ROOT_PASSWORD")');"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(quote "$MARIADB_ROOT_PASSWORD")';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "$MARIADB_DATABASE" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi
    if [ -n "$MARIADB_USER" ]; then
      echo "CREATE USER '$(quote "$MARIADB_USER")'@'%' IDENTIFIED BY '$(quote "$MARIADB_PASSWORD")';"
      if [ -n "$MARIADB_DATABASE" ]; then
        echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$(quote "$MARIADB_USER")'@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$socket" -uroot --protocol=socket
  mariadb-admin --socket="$socket" -uroot shutdown
  wait "$pid" || true
  echo "mariadb-entrypoint: initialized"
fi

exec mariadbd --user=mysql --datadir="$datadir"
