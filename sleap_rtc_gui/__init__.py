"""Qt side of sleap-rtc: dialogs, tray app and the SLEAP plugin."""
