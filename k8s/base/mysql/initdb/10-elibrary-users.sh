# shellcheck shell=bash
# Sourced by the MariaDB image's entrypoint once, on an empty data directory
# (/docker-entrypoint-initdb.d): the exporter's and the backup job's users, with the
# passwords of the mysql Secret mounted at ELIBRARY_MYSQL_SECRETS. The entrypoint itself
# makes root (MARIADB_ROOT_PASSWORD_FILE) and the app's user (MARIADB_USER, all rights on
# MARIADB_DATABASE, which `sre app migrate` needs). docker_process_sql is the entrypoint's
# client, logged in as root. Later password changes: docs/k8s.md "Rotating a password".

elibrary_sql_string() { # a shell string as a quoted SQL string literal
	local value=${1//\\/\\\\}
	printf "'%s'" "${value//\'/\\\'}"
}

elibrary_secret() { # the content of one Secret key, refusing an empty one
	local file="${ELIBRARY_MYSQL_SECRETS:-/etc/mysql-secrets}/$1"
	if [ ! -s "$file" ]; then
		echo "elibrary initdb: $file is missing or empty (k8s/make-secrets writes it)" >&2
		exit 1
	fi
	cat "$file"
}

elibrary_create_users() {
	local db="${MARIADB_DATABASE:?MARIADB_DATABASE names the application database}"
	local exporter="${ELIBRARY_EXPORTER_USER:-elibrary_exporter}"
	local backup="${ELIBRARY_BACKUP_USER:-elibrary_backup}"
	local exporter_password backup_password
	# (an exit inside $(…) leaves only the subshell: stop here too)
	exporter_password=$(elibrary_secret exporter-password) || exit 1
	backup_password=$(elibrary_secret backup-password) || exit 1
	# The exporter: mysqld_exporter's grants plus reading the business tables (docs/exporter.md).
	# The backup job: a consistent dump (mariadb-dump --single-transaction) and one INSERT
	# into backup_runs; MariaDB grants on a table that does not exist yet (the app's
	# migrations make it) only together with CREATE on that one table.
	docker_process_sql <<-EOSQL
		CREATE USER IF NOT EXISTS '${exporter}'@'%'
			IDENTIFIED BY $(elibrary_sql_string "$exporter_password") WITH MAX_USER_CONNECTIONS 3;
		GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '${exporter}'@'%';
		GRANT SELECT ON \`${db}\`.* TO '${exporter}'@'%';
		CREATE USER IF NOT EXISTS '${backup}'@'%'
			IDENTIFIED BY $(elibrary_sql_string "$backup_password") WITH MAX_USER_CONNECTIONS 2;
		GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES ON \`${db}\`.* TO '${backup}'@'%';
		GRANT CREATE, INSERT ON \`${db}\`.\`backup_runs\` TO '${backup}'@'%';
	EOSQL
	echo "elibrary initdb: users ${exporter} and ${backup} ready"
}

elibrary_create_users
