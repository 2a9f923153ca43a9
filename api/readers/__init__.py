"""Read access to the stores for the API: the forecast store (runs, chunk reads) and the observation store
(values with flags, as-of reads), each following its branch head."""

from api.readers.base import HeadReader
from api.readers.forecasts import ForecastReader, RunView
from api.readers.observations import ObservationReader, ObsView

__all__ = ["ForecastReader", "HeadReader", "ObsView", "ObservationReader", "RunView"]
