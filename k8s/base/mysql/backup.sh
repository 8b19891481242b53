#!/bin/bash
# The nightly MariaDB backup (mysql-backup CronJob, MariaDB image): mariadb-dump (mysqldump)
# of the application database into BACKUP_DIR, compressed, checked, kept BACKUP_KEEP_DAYS
# days; then the run is recorded in backup_runs, which the exporter turns into
# elibrary_backup_last_success_timestamp_seconds (alert ElibraryBackupStale).
set -euo pipefail
umask 077

host=${MYSQL_HOST:-mysql}
port=${MYSQL_PORT:-3306}
database=${MYSQL_DATABASE:-elibrary}
user=${BACKUP_USER:-elibrary_backup}
password_file=${BACKUP_PASSWORD_FILE:-/etc/mysql-backup/backup-password}
dir=${BACKUP_DIR:-/backups}
keep_days=${BACKUP_KEEP_DAYS:-14}

say() { printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

case "$database" in
*[!A-Za-z0-9_]* | "")
	say "MYSQL_DATABASE must be a plain name, not '$database'" >&2
	exit 2
	;;
esac
if [ ! -s "$password_file" ]; then
	say "no password in $password_file" >&2
	exit 2
fi
# The password goes to the client in an option file, never on the command line.
options=$(mktemp)
trap 'rm -f "$options" "${partial:-}"' EXIT
password=$(cat "$password_file")
password=${password//\\/\\\\}
{
	printf '[client]\nhost=%s\nport=%s\nuser=%s\n' "$host" "$port" "$user"
	printf 'password="%s"\n' "${password//\"/\\\"}"
} >"$options"
unset password

mkdir -p "$dir"
name="${database}-$(date -u +%Y%m%dT%H%M%SZ).sql.gz"
file="$dir/$name"
partial="$file.partial"
say "dumping $database from $host:$port to $file"
mariadb-dump --defaults-extra-file="$options" --single-transaction --quick --triggers \
	--hex-blob --no-tablespaces --skip-dump-date "$database" | gzip -6 >"$partial"
gzip -t "$partial"
mv "$partial" "$file"
bytes=$(stat -c %s "$file")

# Recorded only after the file is complete: a failed run leaves no row, and the alert fires.
mariadb --defaults-extra-file="$options" --database="$database" --batch \
	--execute="INSERT INTO backup_runs (finished_at, bytes, path) VALUES (UTC_TIMESTAMP(), $bytes, '$file')"
say "done: $bytes bytes"

# Older dumps and pieces of failed runs go.
find "$dir" -maxdepth 1 -type f -name "${database}-*.sql.gz" -mtime +"$keep_days" -print -delete
find "$dir" -maxdepth 1 -type f -name "${database}-*.sql.gz.partial" -mmin +120 -print -delete
