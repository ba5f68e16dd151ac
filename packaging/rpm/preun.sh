# %systemd_user_preun mcp-gateway.socket mcp-gateway.service, expanded (systemd's macros.systemd):
# on removal (not upgrade), disable the units globally and stop them in running user managers.
# %systemd_user_postun expands to nothing; running daemons are not restarted on upgrade (that
# would cut live MCP sessions), an idle daemon exits and the next connection starts the new one.
if [ $1 -eq 0 ] && [ -x "/usr/lib/systemd/systemd-update-helper" ]; then
    /usr/lib/systemd/systemd-update-helper remove-user-units mcp-gateway.socket mcp-gateway.service || :
fi
