"""DICOM in and out: image series (:mod:`.series`), PET → SUV (:mod:`.suv`), RTSTRUCT and DICOM-SEG masks
(:mod:`.rtstruct`, :mod:`.seg`), a header scan of an export tree (:mod:`.scan`) and the manifest it
becomes (:mod:`.importer`)."""
