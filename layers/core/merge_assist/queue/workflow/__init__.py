"""The merge workflow's steps (``statemachines/merge_batch.asl.json``): each state of the
state machine calls one function here through a thin handler in ``functions/workflow``.

A batch's progress lives in its ``Batch`` record, so every step can be retried: it reads
where the batch stands, does what is left, and saves. The state machine only carries ids
and the step's answer (``StepResult``)."""
