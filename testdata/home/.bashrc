# ~/.bashrc: executed by bash(1) for non-login shells.

case $- in
    *i*) ;;
      *) return;;
esac

HISTCONTROL=ignoreboth
HISTSIZE=1000
HISTFILESIZE=2000
shopt -s histappend checkwinsize

export EDITOR=vim
export PATH="$HOME/bin:$PATH"

alias ll='ls -alF'
alias la='ls -A'
PS1='\u@\h:\w\$ '
