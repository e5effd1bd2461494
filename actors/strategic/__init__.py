from actors.strategic.actor import StrategicActor, StrategicParams

__all__ = ["StrategicActor", "StrategicParams"]
