"""What the commands show while they run: one live view per flow (``train``, ``study``,
``ladder``), each an ``Observer`` built on ``base.LiveView`` (a rich bar on a terminal,
plain lines anywhere else), and the summaries printed at the end."""
