"""Makes stdin (a pty slave) the controlling terminal of this new session, then execs argv[1:].

Run with ``start_new_session=True``: the command then sits in the terminal's foreground process
group, and a Ctrl-C written to the pty master reaches its whole group, as in a real terminal.
"""

import fcntl
import os
import sys
import termios

fcntl.ioctl(0, termios.TIOCSCTTY, 0)
os.execvp(sys.argv[1], sys.argv[1:])
