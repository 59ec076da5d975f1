/* The floor of the boot benchmark: an /init that powers the VM off at once. */
#include <stdio.h>
#include <sys/reboot.h>
#include <unistd.h>

int
main (void)
{
  reboot (RB_POWER_OFF);
  perror ("bare-init: reboot");
  for (;;)
    pause ();
}
