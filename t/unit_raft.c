/*
 * t/unit_raft.c - placeholder: being written.  Must never pass by itself
 * once written: every test asserts on behaviour.
 */
int main(void);
int main(void)
{
	return 77;
}
