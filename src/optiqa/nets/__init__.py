"""Networks: generators (SwinIR, RRDBNet, SRResNet) and discriminators.

Entry points: ``create_generator(type, **opts)`` and ``create_discriminator(type, **opts)``.
"""
from optiqa.nets.discriminators import (create_discriminator, list_discriminators,
                                        load_discriminator_checkpoint)
from optiqa.nets.generators import (create_generator, list_generators,
                                    load_generator_checkpoint)

__all__ = ["create_discriminator", "list_discriminators", "load_discriminator_checkpoint",
           "create_generator", "list_generators", "load_generator_checkpoint"]
