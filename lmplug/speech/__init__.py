"""Speech: synthetic speech (``synthesis``) and the Conformer-CTC acoustic model (``acoustic``)."""
