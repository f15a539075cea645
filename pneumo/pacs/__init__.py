"""The hospital's imaging network: films in over DICOM, results back as DICOM objects."""
