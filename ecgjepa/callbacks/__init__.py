"""Lightning callbacks of the pre-training loop."""

from ecgjepa.callbacks.encoder_export import EncoderExport
from ecgjepa.callbacks.online_probe import OnlineProbe
from ecgjepa.callbacks.plot_curves import PlotCurves
from ecgjepa.callbacks.target_momentum import TargetMomentumUpdate
from ecgjepa.callbacks.weight_decay import WeightDecaySchedule

__all__ = ["EncoderExport", "OnlineProbe", "PlotCurves", "TargetMomentumUpdate", "WeightDecaySchedule"]
