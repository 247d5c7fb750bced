"""The watchdog sensor that announces files dropped into the landing folders."""
