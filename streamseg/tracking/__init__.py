"""Track IDs (from the `trackers` package) and the track events derived from them."""

from streamseg.tracking.events import EventTracker, TrackEvent
from streamseg.tracking.tracker import Tracked, Tracker

__all__ = ["EventTracker", "TrackEvent", "Tracked", "Tracker"]
