# baton %preun: on removal ($1 = 0), stop every instance and its socket.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
	for unit in $(systemctl list-units --plain --no-legend --all 'baton@*.service' 'baton@*.socket' | awk '{print $1}'); do
		systemctl stop "$unit" >/dev/null 2>&1 || :
	done
fi
