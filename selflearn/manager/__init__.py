"""The Manager (#8): goals, micro/macro/deep learning cycles, proposals that wait for a person,
reports. Mounted by selflearn.extension; see cycles.py for the life of a cycle."""
