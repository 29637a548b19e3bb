"""Old import paths kept for what earlier versions of arl left outside the package: nothing new goes here."""
