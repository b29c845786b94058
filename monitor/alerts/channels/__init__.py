"""One module per alert channel, each a ``Sender`` (``channels.base``) registered in ``monitor.alerts.registry``."""
