"""JupyterHub for a class on one server: `make hub` runs `jupyterhub -f hub/jupyterhub_config.py`.

Everything an instructor may want to change is an environment variable (the Makefile passes them
on; hub/README.md explains each):

  COURSE_HUB_IP        127.0.0.1   where the hub listens (put TLS in front before opening it: hub/README.md)
  COURSE_HUB_PORT      8000        its public port; COURSE_HUB_API_PORT (8081) and
                                   COURSE_HUB_PROXY_API_PORT (8001) are internal, on 127.0.0.1
  COURSE_INSTRUCTOR    instructor  the admin: authorizes sign-ups, gets the formgrader
  COURSE_EXCHANGE      /srv/nbgrader/exchange   nbgrader's shared exchange folder (mode 1777)
  COURSE_HUB_HOMES     /home       where a new user's Unix account gets its home (mode 0700)
  COURSE_HUB_STATE     build/hub   the hub's database, cookie secret and logs
  COURSE_HUB_IDLE      3600        seconds of inactivity before a server is stopped (idle culler)
  COURSE_HUB_API_TOKEN (unset)     a token for scripted administration (the end-to-end test sets one)

Accounts: NativeAuthenticator. A student signs up at /hub/signup; the instructor authorizes the
account at /hub/authorize (or lets anyone sign up with COURSE_HUB_OPEN_SIGNUP=1). Each hub user is
a Unix user: the first start of a server creates the account (useradd) with a private home,
so file permissions, not goodwill, keep students out of each other's work. The hub runs as root
to do that and to start each server as its user (LocalProcessSpawner).
"""

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

from course_utils.tools.hub import shared_environment_problem

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PREFIX = Path(sys.prefix)  # the course's virtual environment: the kernel, JupyterLab and nbgrader of every user
env = os.environ.get

IP = env("COURSE_HUB_IP", "127.0.0.1")
INSTRUCTOR = env("COURSE_INSTRUCTOR", "instructor")
EXCHANGE = env("COURSE_EXCHANGE", "/srv/nbgrader/exchange")
HOMES = Path(env("COURSE_HUB_HOMES", "/home"))
STATE = Path(env("COURSE_HUB_STATE", str(Path(env("COURSE_BUILD_DIR", str(ROOT / "build"))) / "hub")))
USERNAME = r"^[a-z][a-z0-9_-]{0,31}$"  # what useradd accepts everywhere; JupyterHub lower-cases names first
PROXY = PREFIX / "node" / "node_modules" / ".bin" / "configurable-http-proxy"  # `make hub` installs it (npm)

PROBLEM = shared_environment_problem()
if PROBLEM:
    sys.exit(f"make hub: {PROBLEM}")
STATE.mkdir(parents=True, exist_ok=True)
STATE.chmod(0o700)  # the database holds every password's bcrypt hash and the API tokens' hashes
c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)

# --- where it listens ---------------------------------------------------------------------------
c.JupyterHub.ip = IP
c.JupyterHub.port = int(env("COURSE_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env("COURSE_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env('COURSE_HUB_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.command = [str(PROXY)]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
# Behind a TLS proxy (Caddy, nginx: hub/README.md) the hub still serves plain HTTP on loopback.

# --- accounts -----------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "native"
c.NativeAuthenticator.open_signup = env("COURSE_HUB_OPEN_SIGNUP", "0") == "1"
c.NativeAuthenticator.minimum_password_length = 10
c.NativeAuthenticator.check_common_password = True
c.NativeAuthenticator.allowed_failed_logins = 5
c.NativeAuthenticator.seconds_before_next_try = 60
c.Authenticator.admin_users = {INSTRUCTOR}
c.Authenticator.username_pattern = USERNAME
c.Authenticator.allow_all = True  # NativeAuthenticator's authorization is the allow list


def _unix_account(name: str) -> pwd.struct_passwd:
    """The Unix user of hub user `name`, created (home 0700 under COURSE_HUB_HOMES) on first use."""
    if not re.match(USERNAME, name):
        raise ValueError(f"{name!r} cannot be a Unix user name (allowed: {USERNAME})")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        HOMES.mkdir(parents=True, exist_ok=True)
        home = HOMES / name
        subprocess.run(
            ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", "--user-group", name],
            check=True,
            capture_output=True,
        )
        home.chmod(0o700)
        return pwd.getpwnam(name)


def pre_spawn_hook(spawner):
    """Give each user their Unix account, the course environment and their role's nbgrader extensions."""
    name = spawner.user.name
    account = _unix_account(name)
    spawner.environment.update(
        {
            "COURSE_EXCHANGE": EXCHANGE,
            "JUPYTER_CONFIG_PATH": str(HERE / "jupyter"),  # nbgrader_config.py: course id and exchange
            "OMP_WAIT_POLICY": "PASSIVE",  # CONTRIBUTING.md, "Known gotchas"
            "PATH": f"{PREFIX / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        }
    )
    if name == INSTRUCTOR:
        # the instructor's loop (make release/collect/autograde/feedback) and the formgrader share this course root
        build = env("COURSE_INSTRUCTOR_BUILD_DIR", str(Path(account.pw_dir) / "course-build"))
        spawner.environment.update({"COURSE_BUILD_DIR": build, "COURSE_ROLE": "instructor"})
    else:
        spawner.args = [*spawner.args, "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=False"]


c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.pre_spawn_hook = pre_spawn_hook
c.Spawner.cmd = [str(PREFIX / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90  # a 2-core server starting several JupyterLabs at once
c.LocalProcessSpawner.shell_cmd = []

# --- services: the idle culler, and an optional token for scripts -------------------------------
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={env('COURSE_HUB_IDLE', '3600')}"],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
if env("COURSE_HUB_API_TOKEN"):
    c.JupyterHub.services.append({"name": "course-admin", "api_token": env("COURSE_HUB_API_TOKEN")})
    c.JupyterHub.load_roles.append(
        {
            "name": "course-admin",
            "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "list:services", "read:services"],
            "services": ["course-admin"],
        }
    )
