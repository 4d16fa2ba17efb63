"""Screen sizes that pages are seen at: a phone and a desktop."""

from __future__ import annotations

from typing import Any

PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 1,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}, "device_scale_factor": 1}


def phone(engine: str) -> dict[str, Any]:
    """Phone-sized context options; Firefox rejects mobile emulation, so it gets the size alone."""
    if engine == "firefox":
        return {k: v for k, v in PHONE.items() if k not in ("is_mobile", "has_touch")}
    return PHONE
