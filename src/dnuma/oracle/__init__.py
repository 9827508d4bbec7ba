"""The real kernel as the judge: oracle scenarios booted under QEMU (Linux
6.12.117, Debian's build), snapshots of the guest after each step, and the
field-by-field comparison of the model with them (``dnuma oracle``)."""
