# Put this folder on PYTHONPATH with COURSE_OFFLINE_GUARD=1 and every Python process
# started with that environment (notebook kernels included) refuses non-loopback network.
import os

if os.environ.get("COURSE_OFFLINE_GUARD") == "1":
    from course_utils.tools.offline import install_guard

    install_guard()
