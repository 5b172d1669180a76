"""Small social dilemmas written as plain PettingZoo ``ParallelEnv`` s, as a user of the library would write them.

They are not part of the library: the custom-task tests register them with :func:`designer.register_task` and
tune the ``small_game`` preset (:mod:`designer.presets`) on them.

================= ======= ====== ================================ ========================= ==================
module            players rounds selfish outcome (no designer)    optimum                   designer sees
================= ======= ====== ================================ ========================= ==================
``hawk_dove``     2       1      at least one hawk (welfare <= 4) both dove (welfare 6)      observations
``volunteer``     3       1      nobody volunteers (welfare 0)    someone volunteers (5)    observations
``commons``       3       5      everyone high effort (18)        one high (28; all low 27) ``state()``
================= ======= ====== ================================ ========================= ==================
"""
