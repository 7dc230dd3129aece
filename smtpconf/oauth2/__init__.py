"""OAuth2 for SMTP (SPEC §7): access tokens from refresh tokens, and the logins that get them.

``access_token`` is what send-test, ``smtpconf oauth2 token`` (msmtp's ``passwordeval``,
neomutt's ``smtp_oauth_refresh_command``) and the Postfix refresher call. A cached token is
answered from ``$XDG_CACHE_HOME/smtpconf/oauth2/`` with no network request and no heavy import:
this module imports nothing beyond the error classes until a refresh is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smtpconf.errors import FatalError

if TYPE_CHECKING:
    from pathlib import Path

    from smtpconf.model import Login


class OAuth2Error(FatalError):
    """No access token: the file, the secret, the identity provider or the network said no.
    Messages name what to do and never carry a token or a client secret."""


class InvalidGrant(OAuth2Error):
    """The identity provider refused the refresh token (RFC 6749 §5.2 ``invalid_grant``): only a
    new login helps. ``smtpconf oauth2 token`` exits 1 on it (SPEC §7)."""


def access_token(login: Login, base_dir: Path, *, timeout: float, login_command: str | None = None) -> str:
    """A valid access token for ``login`` (``auth: oauth2``): the cached one until shortly before
    it expires, else a new one from the refresh token (written back when the provider rotates it).

    ``base_dir`` is the smtpconf file's directory (relative ``{file:}`` and ``{command:}`` secrets).
    ``timeout`` bounds the whole refresh (secret commands, DNS, connect, TLS, reply), not each read.
    ``login_command`` is the ``smtpconf oauth2 login ...`` command an error should suggest; by
    default it is built from the login (``FILE --relay NAME`` / ``FILE --account USERNAME``).
    """
    from smtpconf.oauth2.token import access_token as get

    return get(login, base_dir, timeout=timeout, login_command=login_command)


__all__ = ["InvalidGrant", "OAuth2Error", "access_token"]
