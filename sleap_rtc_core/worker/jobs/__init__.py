"""A job on the worker, from ``JOB_SUBMIT`` to the sleap-nn process and back.

Read in this order:

* :mod:`.service`: :class:`~.service.JobService` answers the job messages of a
  data channel and asks the worker's ledger (:mod:`..ledger`) for a slot;
* :mod:`.prepare`: the spec checked, mapped and planned (private configs, run
  folders), or every field error at once;
* :mod:`.run`: one job's life (:class:`~.run.JobRun`): each model's training,
  then the inference it asks for, progress to its channel;
* :mod:`.sleapnn_cmd`: the sleap-nn command lines (``train_argv_for_spec``,
  ``track_argv_for_spec``);
* :mod:`.control` and :mod:`.process`: stop, cancel and the process group;
  :mod:`.env` the allow-listed environment; :mod:`.outbox` the frames held for
  a detached client; :mod:`.results` and :mod:`.inference` what comes back;
  :mod:`.paths` mount checks and remapped labels.
"""
