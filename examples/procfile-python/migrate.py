"""The release phase of the Procfile: unikctl reports it as not run (there is no release phase)."""
print("nothing to migrate")
