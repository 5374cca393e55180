"""The interactive wizard (Textual). Nothing outside this package imports Textual.

The front end drives a `ztwizard.core.Core` that its caller built (the CLI, from its arguments):
`make_app(core).run()`. This package never imports the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core import Core
    from .app import WizardApp


def make_app(core: Core, *, resume_session: str | None = None) -> WizardApp:
    """The wizard over `core`; with `resume_session` it reconciles that session and opens the
    step where it stopped. Textual is imported here, not when the package is."""
    from .app import WizardApp

    return WizardApp(core, resume_session=resume_session)
