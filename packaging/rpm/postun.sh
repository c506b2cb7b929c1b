# baton %postun: on upgrade ($1 >= 1), reload running instances, which
# execute the new baton in place (same main pid) and roll their workers;
# on erase ($1 = 0), forget the units. The instances' state
# (/var/lib/private/baton, the StateDirectory= of the DynamicUser=
# service) is kept, as rpm keeps data on erase: the deb drops it only on
# purge, which rpm has no counterpart of. Remove it by hand if unwanted.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		for unit in $(systemctl list-units --plain --no-legend --state=active 'baton@*.service' | awk '{print $1}'); do
			systemctl reload "$unit" >/dev/null 2>&1 ||
				echo "baton: reloading $unit failed; it goes on with the previous baton" >&2
		done
	fi
fi
