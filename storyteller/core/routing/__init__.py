"""MoE router captures: the capture format and its analysis (`router`), captures kept with replies
(`capture`), and the Experts panel's service (`experts`)."""
