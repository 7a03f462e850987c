"""Track IDs (from the `trackers` package) and the track events derived from them."""

from streamseg.tracking.events import EventTracker, TrackEvent
from streamseg.tracking.tracker import make_tracker

__all__ = ["EventTracker", "TrackEvent", "make_tracker"]
