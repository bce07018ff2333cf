"""nbgrader's settings for every user of the course's JupyterHub (the hub points JUPYTER_CONFIG_PATH here).

Students: which course, where the exchange is (for the Assignments tab: fetch, submit, fetch feedback).
The instructor also gets the course root the formgrader reads, the one `make release` ... write.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (nbgrader's config loader defines it)
c.CourseDirectory.course_id = "transformers-course"  # course_utils.tools.autograde uses the same id
c.Exchange.root = os.environ.get("COURSE_EXCHANGE", "/srv/nbgrader/exchange")
if os.environ.get("COURSE_ROLE") == "instructor" and os.environ.get("COURSE_BUILD_DIR"):
    c.CourseDirectory.root = str(Path(os.environ["COURSE_BUILD_DIR"]) / "nbgrader")
