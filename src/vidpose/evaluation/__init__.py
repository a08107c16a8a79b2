"""The evaluation of a split, owned by one object per method family.

A method's validation (and test) step ``add``s each batch's predictions to a
:class:`~vidpose.evaluation.split.SplitEvaluator`; at the epoch's end ``finish`` gathers
every process's predictions (``gather_all``), keeps each sample once, scores them and
writes the result files that ``vidpose eval`` reads back to the same numbers.

- ``split.py``: ``gather_all``, ``split_data`` and the ``SplitEvaluator`` base;
- ``crop_poses.py``: top-down poses from person crops (SimpleBaseline, the two-stage net);
- ``boxes.py``: person boxes, pycocotools box AP (CenterNet);
- ``scoring.py``: PoseTrack mAP/MOTA or COCO AP of a split's poses, and their files.
"""
